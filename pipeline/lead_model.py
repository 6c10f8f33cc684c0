"""The learned lead score: fitted from this business's own outcomes, used only when it beats
the fixed weights on the most recent conversations (docs/routing.md#learned-lead-score).

``refit`` reads the conversations with a final outcome (ordered or paid: a sale; went silent,
opted out, cancelled: none), fits a logistic regression (scikit-learn) on the older ones and
back-tests it on the most recent ``LEAD_MODEL_BACKTEST_SHARE``, beside the fixed weights on the
same conversations: area under the ROC curve, Brier score and calibration error for both. It
becomes the active model only with ``LEAD_MODEL_MIN_OUTCOMES`` outcomes, an AUC higher by
``LEAD_MODEL_MIN_AUC_GAIN`` and a Brier score no worse (``verdict``); every refit is stored
with its figures and its reason either way.

``score`` is what routing asks: the active model's class, chance and reasons for a conversation,
or None (the fixed weights score). ``rollback`` retires the active model for the one before it.
Functions take a session and never commit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from domain import lead_features
from domain.lead_features import ConversationFacts, LinearModel
from models import Channel, Contact, Conversation, LeadModel, Message, Order
from models.base import utcnow
from models.conversations import INBOUND
from models.labels import active_labels
from settings import settings

log = logging.getLogger(__name__)

FIXED_WEIGHTS = "fixed weights"
# The most recent conversations with an outcome that a refit reads: enough to learn from, few
# enough that a refit stays a matter of seconds.
MAX_CONVERSATIONS = 20_000


def scored_by(model_id: int | None) -> str:
    """How the API names what scored a lead: "model 3", or "fixed weights"."""
    return f"model {model_id}" if model_id is not None else FIXED_WEIGHTS


# --- Facts of conversations, the same for fitting and for scoring -------------------------------


def facts_of(session: Session, conversation_ids: Sequence[int]) -> dict[int, ConversationFacts]:
    """What each conversation looks like to the model, as stored now."""
    if not conversation_ids:
        return {}
    zone = ZoneInfo(settings.timezone)
    rows = session.execute(
        select(Conversation, Contact.typical_response_seconds, Channel.name)
        .join(Contact, Contact.id == Conversation.contact_id)
        .outerjoin(Channel, Channel.id == Conversation.channel_id)
        .where(Conversation.id.in_(conversation_ids))
    ).all()
    counts = _message_counts(session, conversation_ids)
    labels = active_labels(session, sorted({c.contact_id for c, _, _ in rows}))
    past = _past_orders(session, [c for c, _, _ in rows])
    found = {}
    for conversation, speed, channel in rows:
        customer, turns = counts.get(conversation.id, (0, 0))
        found[conversation.id] = ConversationFacts(
            intents=tuple(conversation.intents or ()),
            customer_messages=customer,
            turns=turns,
            typical_response_seconds=speed,
            local_hour=conversation.started_at.astimezone(zone).hour,
            channel=channel or "default",
            campaign=conversation.campaign,
            labels=tuple(labels.get(conversation.contact_id, ())),
            past_orders=past.get(conversation.id, 0),
        )
    return found


def _message_counts(session: Session, conversation_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """Per conversation: the customer's messages, and the turns (runs of one side writing)."""
    rows = session.execute(
        select(Message.conversation_id, Message.direction)
        .where(Message.conversation_id.in_(conversation_ids))
        .order_by(Message.conversation_id, Message.occurred_at, Message.id)
    )
    counts: dict[int, tuple[int, int]] = {}
    last: dict[int, str] = {}
    for conversation_id, direction in rows:
        customer, turns = counts.get(conversation_id, (0, 0))
        counts[conversation_id] = (
            customer + (direction == INBOUND),
            turns + (last.get(conversation_id) != direction),
        )
        last[conversation_id] = direction
    return counts


def _past_orders(session: Session, conversations: Sequence[Conversation]) -> dict[int, int]:
    """Per conversation: the contact's orders placed before it started (never its own: that is
    the outcome being learnt)."""
    placed = func.coalesce(Order.ordered_at, Order.created_at)
    rows = session.execute(
        select(Order.contact_id, Order.conversation_id, placed).where(
            Order.contact_id.in_({c.contact_id for c in conversations})
        )
    ).all()
    return {
        c.id: sum(
            1 for contact, of, at in rows if contact == c.contact_id and of != c.id and at < c.started_at
        )
        for c in conversations
    }


# --- Refitting -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    auc: float
    brier: float
    calibration_error: float

    def as_json(self) -> dict[str, float]:
        return {
            "auc": round(self.auc, 4),
            "brier": round(self.brier, 4),
            "calibration_error": round(self.calibration_error, 4),
        }


def _figures(labels: list[int], ranking: Sequence[float], chances: Sequence[float]) -> Figures:
    from sklearn.metrics import brier_score_loss, roc_auc_score

    return Figures(
        auc=float(roc_auc_score(labels, ranking)),
        brier=float(brier_score_loss(labels, chances)),
        calibration_error=lead_features.calibration_error(labels, list(chances)),
    )


@dataclass(frozen=True)
class Fit:
    """A fitted model and its back-test beside the fixed weights', on the same conversations."""

    model: LinearModel
    features: list[str]
    learned: Figures
    fixed: Figures
    base_rate: float  # the share of back-test conversations that ordered


def fit(train: Sequence[tuple[ConversationFacts, int]], test: Sequence[tuple[ConversationFacts, int]]) -> Fit:
    """Fit on ``train`` and back-test on ``test`` (facts, 1 if it ordered). Both need both
    outcomes. The fixed weights' points become a chance through a one-variable logistic fit on
    the same training conversations (Platt scaling), so their calibration is judged fairly."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    train_rows = [lead_features.features(f) for f, _ in train]
    test_rows = [lead_features.features(f) for f, _ in test]
    names = lead_features.vocabulary(train_rows)

    def matrix(rows: list[dict[str, float]]) -> np.ndarray:
        return np.array([[row.get(n, 0.0) for n in names] for row in rows], dtype=float).reshape(
            len(rows), len(names)
        )

    y_train = [y for _, y in train]
    y_test = [y for _, y in test]
    learner = LogisticRegression(C=1.0, max_iter=1000).fit(matrix(train_rows), y_train)
    model = LinearModel(
        intercept=float(learner.intercept_[0]),
        coefficients={n: round(float(c), 6) for n, c in zip(names, learner.coef_[0], strict=True)},
    )
    chances = [lead_features.probability(model, row) for row in test_rows]
    learned = _figures(y_test, chances, chances)

    points_train = np.array([[lead_features.fixed_weights_score(f)] for f, _ in train], dtype=float)
    points_test = np.array([[lead_features.fixed_weights_score(f)] for f, _ in test], dtype=float)
    platt = LogisticRegression(max_iter=1000).fit(points_train, y_train)
    fixed = _figures(y_test, points_test[:, 0], platt.predict_proba(points_test)[:, 1])
    return Fit(model, names, learned, fixed, sum(y_test) / len(y_test))


def refit(session: Session) -> LeadModel:
    """Fit a new model on the stored outcomes, back-test it, store it; make it the active one
    if it is allowed to score (enough outcomes, beats the fixed weights)."""
    now = utcnow()
    final = sorted(lead_features.ORDERED_OUTCOMES | lead_features.LOST_OUTCOMES)
    rows = session.execute(
        select(Conversation.id, Conversation.started_at, Conversation.outcome)
        .where(Conversation.outcome.in_(final))
        .order_by(Conversation.started_at.desc(), Conversation.id.desc())
        .limit(MAX_CONVERSATIONS)
    ).all()
    rows.reverse()  # oldest first: the back-test is the most recent end
    row = LeadModel(
        created_at=now,
        outcomes=len(rows),
        trained_on=0,
        tested_on=0,
        features=[],
        coefficients={},
        figures={},
        passed=False,
        active=False,
        reason="",
    )
    session.add(row)
    minimum = settings.lead_model_min_outcomes
    if len(rows) < minimum:
        row.reason = (
            f"only {len(rows)} conversations with a final outcome; {minimum} are needed "
            "(LEAD_MODEL_MIN_OUTCOMES): the fixed weights score"
        )
        session.flush()
        return row
    split = round(len(rows) * (1 - settings.lead_model_backtest_share))
    facts = facts_of(session, [r.id for r in rows])
    labelled = [(facts[r.id], int(r.outcome in lead_features.ORDERED_OUTCOMES)) for r in rows]
    train, test = labelled[:split], labelled[split:]
    row.trained_on, row.tested_on = len(train), len(test)
    row.tested_from, row.tested_until = rows[split].started_at, rows[-1].started_at
    for part, name in ((train, "fitting"), (test, "back-test")):
        if len({y for _, y in part}) < 2:
            row.reason = f"the {name} conversations all had the same outcome: nothing to learn or test"
            session.flush()
            return row
    result = fit(train, test)
    row.features = result.features
    row.intercept = result.model.intercept
    row.coefficients = dict(result.model.coefficients)
    row.figures = {
        "model": result.learned.as_json(),
        "fixed_weights": result.fixed.as_json(),
        "ordered_share": round(result.base_rate, 4),
    }
    row.passed, row.reason = verdict(result.learned, result.fixed)
    session.flush()
    if row.passed:
        _activate(session, row, retired_by=scored_by(row.id), now=now)
        session.flush()
    return row


def verdict(learned: Figures, fixed: Figures) -> tuple[bool, str]:
    """Whether a model may score, and why: it must rank the back-test better than the fixed
    weights by LEAD_MODEL_MIN_AUC_GAIN (a win by noise alone is no win) and be calibrated no
    worse (Brier score)."""
    m, f = learned, fixed
    comparison = f"AUC {m.auc:.3f} vs {f.auc:.3f}, Brier {m.brier:.3f} vs {f.brier:.3f}"
    if m.auc < f.auc + settings.lead_model_min_auc_gain:
        gain = settings.lead_model_min_auc_gain
        return False, f"does not rank better than the fixed weights by {gain} AUC ({comparison})"
    if m.brier > f.brier:
        return False, f"ranks better but is less well calibrated than the fixed weights ({comparison})"
    return True, f"beats the fixed weights ({comparison})"


def _activate(session: Session, row: LeadModel, *, retired_by: str, now: datetime) -> None:
    current = active(session)
    if current is not None and current.id != row.id:
        current.active, current.retired_at, current.retired_by = False, now, retired_by
        session.flush()  # one active row at a time: the unique index sees the old one go first
    row.active = True
    if row.activated_at is None:
        row.activated_at = now


def active(session: Session) -> LeadModel | None:
    return session.scalar(select(LeadModel).where(LeadModel.active))


class NothingToRollBack(Exception):
    """No model is active: the fixed weights score already."""


def rollback(session: Session, actor: str) -> tuple[LeadModel, LeadModel | None]:
    """Retire the active model (for good: a later rollback never brings it back) for the one that
    was active before it, if any; else the fixed weights score. Returns the model retired and
    the one now active."""
    current = session.scalar(select(LeadModel).where(LeadModel.active).with_for_update())
    if current is None:
        raise NothingToRollBack()
    now = utcnow()
    current.active, current.retired_at, current.retired_by = False, now, actor
    current.rolled_back = True
    session.flush()
    previous = session.scalar(
        select(LeadModel)
        .where(
            LeadModel.passed,
            ~LeadModel.rolled_back,
            LeadModel.activated_at.is_not(None),
            LeadModel.activated_at <= current.activated_at,
            LeadModel.id != current.id,
        )
        .order_by(LeadModel.activated_at.desc(), LeadModel.id.desc())
        .limit(1)
    )
    if previous is not None:
        previous.active, previous.retired_at, previous.retired_by = True, None, None
        session.flush()
    return current, previous


# --- Scoring -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Learned:
    model_id: int
    lead_class: str
    chance: float
    reasons: tuple[str, ...]


def score(session: Session, conversation_id: int) -> Learned | None:
    """The active model's view of this conversation; None when the fixed weights score."""
    row = active(session)
    if row is None or row.intercept is None:
        return None
    try:  # scoring never blocks routing: a model that cannot score leaves it to the fixed weights
        with session.begin_nested():
            facts = facts_of(session, [conversation_id])[conversation_id]
        model = LinearModel(row.intercept, row.coefficients)
        present = lead_features.features(facts)
        chance = lead_features.probability(model, present)
        moved = lead_features.contributions(model, present)
    except Exception:
        log.warning(
            "lead model %s could not score a conversation: the fixed weights score it", row.id, exc_info=True
        )
        return None
    reasons = (f"chance of an order {chance:.0%}", *(c.reads() for c in moved))
    return Learned(
        model_id=row.id,
        lead_class=lead_features.lead_class(
            chance, settings.lead_model_hot_chance, settings.lead_model_warm_chance
        ),
        chance=chance,
        reasons=reasons,
    )
