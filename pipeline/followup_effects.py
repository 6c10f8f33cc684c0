"""What follow-ups achieve: whether the customer wrote (or ordered) after each one, compared with
the customers whose due follow-up was held back on purpose.

A share (FOLLOWUP_HOLDOUT_SHARE) of adaptive follow-ups that are due and allowed is not sent: it
is ``held_out``, chosen by its id so that the choice is the same on every retry. Each inbound
message marks the follow-ups of that contact due within FOLLOWUP_EFFECT_HOURS before it as
answered; each order those due within FOLLOWUP_ORDER_DAYS as ordered. Per rules scope, the
answer rate after a nudge is then compared with the answer rate after silence: a rule whose
nudges get fewer answers than silence is reported (``GET /api/followup-rules/effects``), and
nothing here ever sends more of them because they go unanswered.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from models import AdaptiveFollowup, DeliveryFollowup, Order
from models.orders import FIRED
from models.routing import HELD_OUT, QUEUED
from settings import settings

ADAPTIVE, DELIVERY = "adaptive", "delivery"
WORSE = "fewer answers than silence"
BETTER = "more answers than silence"
UNKNOWN = "not enough follow-ups yet"
NO_BASELINE = "no silence to compare with: every delivery follow-up is sent"
_TIMESTAMP_RESOLUTION = timedelta(seconds=1)


def held_out(followup_id: int) -> bool:
    """Whether this follow-up is one of the share kept back (stable: the same answer every time)."""
    share = settings.followup_holdout_share
    return share > 0 and zlib.crc32(f"followup:{followup_id}".encode()) % 1000 < share * 1000


def note_answer(session: Session, contact_id: int, at: datetime) -> None:
    """The customer wrote at ``at``: the follow-ups due shortly before it worked (or, held out,
    were followed by an answer anyway)."""
    since = at - timedelta(hours=settings.followup_effect_hours)
    # Gateways stamp messages in whole seconds: an answer stamped in the second the nudge went
    # out (10.0 for a nudge due at 10.7) came after it, not before.
    until = at + _TIMESTAMP_RESOLUTION
    _mark_adaptive(session, contact_id, AdaptiveFollowup.answered_at, since, until, at)
    session.execute(
        update(DeliveryFollowup)
        .where(
            DeliveryFollowup.order_id.in_(select(Order.id).where(Order.contact_id == contact_id)),
            DeliveryFollowup.state == FIRED,
            DeliveryFollowup.answered_at.is_(None),
            DeliveryFollowup.fired_at.between(since, until),
        )
        .values(answered_at=at)
    )


def note_order(session: Session, contact_id: int, at: datetime) -> None:
    """The customer ordered at ``at``: the adaptive follow-ups due shortly before it led there."""
    since = at - timedelta(days=settings.followup_order_days)
    _mark_adaptive(session, contact_id, AdaptiveFollowup.ordered_at, since, at, at)


def _mark_adaptive(
    session: Session, contact_id: int, effect: Any, since: datetime, until: datetime, at: datetime
) -> None:
    """Set ``effect`` (answered_at or ordered_at) to ``at`` on the contact's adaptive follow-ups,
    sent or held out, due in [since, until] and not marked yet."""
    session.execute(
        update(AdaptiveFollowup)
        .where(
            AdaptiveFollowup.contact_id == contact_id,
            AdaptiveFollowup.state.in_((QUEUED, HELD_OUT)),
            effect.is_(None),
            AdaptiveFollowup.due_at.between(since, until),
        )
        .values({effect.key: at})
    )


@dataclass(frozen=True)
class Effect:
    kind: str  # adaptive | delivery
    scope: str  # the rules that scheduled them ("default", "contact:<id>", "settings")
    sent: int
    answered: int
    ordered: int
    held_out: int
    held_out_answered: int
    held_out_ordered: int
    verdict: str

    @property
    def answer_rate(self) -> float | None:
        return self.answered / self.sent if self.sent else None

    @property
    def silence_answer_rate(self) -> float | None:
        return self.held_out_answered / self.held_out if self.held_out else None


def effects(session: Session, since: datetime) -> list[Effect]:
    """Per rules scope, the follow-ups due since ``since`` and what followed them."""
    sent = AdaptiveFollowup.state == QUEUED
    kept = AdaptiveFollowup.state == HELD_OUT
    answered, ordered = AdaptiveFollowup.answered_at.is_not(None), AdaptiveFollowup.ordered_at.is_not(None)
    scope = func.coalesce(AdaptiveFollowup.rules_scope, "settings")

    def count(condition):  # type: ignore[no-untyped-def]
        return func.sum(case((condition, 1), else_=0))

    rows = session.execute(
        select(
            scope,
            count(sent),
            count(sent & answered),
            count(sent & ordered),
            count(kept),
            count(kept & answered),
            count(kept & ordered),
        )
        .where(AdaptiveFollowup.due_at >= since, AdaptiveFollowup.state.in_((QUEUED, HELD_OUT)))
        .group_by(scope)
        .order_by(scope)
    ).all()
    found = [
        Effect(ADAPTIVE, name, *map(int, numbers), verdict=_verdict(*numbers)) for name, *numbers in rows
    ]
    fired, replied = session.execute(
        select(func.count(), func.count(DeliveryFollowup.answered_at)).where(
            DeliveryFollowup.state == FIRED, DeliveryFollowup.fired_at >= since
        )
    ).one()
    if fired:
        # Every due delivery follow-up goes (it asks whether the order arrived).
        found.append(Effect(DELIVERY, "settings", fired, replied, 0, 0, 0, 0, verdict=NO_BASELINE))
    return found


def _verdict(
    sent: int, answered: int, _ordered: int, kept: int, kept_answered: int, _kept_ordered: int
) -> str:
    if min(sent, kept) < settings.followup_min_sample:
        return UNKNOWN
    return WORSE if answered / sent < kept_answered / kept else BETTER
