"""The learned lead score's side that needs no library: what a conversation looks like to the
model (features a person can read), how a fitted logistic regression scores it, and why.

Every feature is 0 or 1 and named for what it says ("intent:price", "campaign:ad:1202…",
"messages:3+"), so a coefficient reads as "this, when present, moves the odds of an order by so
much", and a contact's reasons are the present features with the largest coefficient * value.
Fitting (scikit-learn) lives in pipeline/lead_model.py; scoring here is a dot product, so the
routing worker never loads scikit-learn.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from domain import lead_score

# Conversation outcomes (domain/outcomes.py) that count as a sale, and the final ones that do not.
ORDERED_OUTCOMES = frozenset({"ordered", "paid"})
LOST_OUTCOMES = frozenset({"went_silent", "opted_out", "cancelled"})

# Open-ended features (a channel, a campaign, a label) enter the model once seen this often.
MIN_VALUE_COUNT = 5

_PARTS_OF_DAY = (("night", 0, 6), ("morning", 6, 12), ("afternoon", 12, 18), ("evening", 18, 24))
_DESCRIBED = {
    "messages:3+": "3 or more customer messages",
    "messages:6+": "6 or more customer messages",
    "turns:3+": "3 or more back-and-forth turns",
    "turns:6+": "6 or more back-and-forth turns",
    "answers:5min": "usually answers within 5 minutes",
    "answers:1h": "usually answers within an hour",
    "past_orders:1+": "ordered before",
    "past_orders:3+": "ordered 3 or more times before",
    "hour:night": "wrote first at night (00-06)",
    "hour:morning": "wrote first in the morning (06-12)",
    "hour:afternoon": "wrote first in the afternoon (12-18)",
    "hour:evening": "wrote first in the evening (18-24)",
}
_INTENT_DESCRIBED = {i.name: i.describes for i in lead_score.INTENTS}


@dataclass(frozen=True)
class ConversationFacts:
    """What is stored about one conversation, as the features are made of it."""

    intents: tuple[str, ...]  # buying intents seen in it (conversations.intents)
    customer_messages: int
    turns: int  # how often the word passed between the customer and us
    typical_response_seconds: float | None  # how fast the customer usually answers us
    local_hour: int  # when it started, in TIMEZONE
    channel: str  # the channel's name ("default": the settings' number)
    campaign: str | None  # the campaign that brought it (None: organic)
    labels: tuple[str, ...]  # the contact's active labels
    past_orders: int  # the contact's orders from before it started


def features(facts: ConversationFacts) -> dict[str, float]:
    """The features present in this conversation, each 1.0: absent ones are simply not listed."""
    found: dict[str, float] = {}
    for name in facts.intents:
        if name in _INTENT_DESCRIBED:
            found[f"intent:{name}"] = 1.0
    for count, name in ((facts.customer_messages, "messages"), (facts.turns, "turns")):
        if count >= 3:
            found[f"{name}:3+"] = 1.0
        if count >= 6:
            found[f"{name}:6+"] = 1.0
    speed = facts.typical_response_seconds
    if speed is not None and speed < 300:
        found["answers:5min"] = 1.0
    if speed is not None and speed < 3600:
        found["answers:1h"] = 1.0
    for part, start, end in _PARTS_OF_DAY:
        if start <= facts.local_hour % 24 < end:
            found[f"hour:{part}"] = 1.0
    found[f"channel:{facts.channel}"] = 1.0
    if facts.campaign:
        found[f"campaign:{facts.campaign}"] = 1.0
    for label in facts.labels:
        found[f"label:{label.strip().lower()}"] = 1.0
    if facts.past_orders >= 1:
        found["past_orders:1+"] = 1.0
    if facts.past_orders >= 3:
        found["past_orders:3+"] = 1.0
    return found


def vocabulary(rows: Iterable[Mapping[str, float]], min_count: int = MIN_VALUE_COUNT) -> list[str]:
    """The feature names a model is fitted on: every fixed feature seen at all, and a channel,
    campaign or label seen in at least ``min_count`` conversations (rarer ones would only add
    noise and make the model remember single customers). Sorted, so a refit is reproducible."""
    seen: Counter[str] = Counter()
    for row in rows:
        seen.update(name for name, value in row.items() if value)
    open_ended = ("channel:", "campaign:", "label:")
    return sorted(
        name for name, count in seen.items() if count >= (min_count if name.startswith(open_ended) else 1)
    )


def describe(name: str) -> str:
    """How a feature reads in a reason: "asks about price", "came from campaign ad:1202…"."""
    kind, _, value = name.partition(":")
    if kind == "intent":
        return _INTENT_DESCRIBED.get(value, f"intent {value}")
    if kind == "channel":
        return f"wrote on channel {value}"
    if kind == "campaign":
        return f"came from campaign {value}"
    if kind == "label":
        return f"labelled {value}"
    return _DESCRIBED.get(name, name)


def fixed_weights_score(facts: ConversationFacts) -> int:
    """The fixed weights' points for the whole conversation (domain/lead_score.py), as routing
    gives them when a message shows every intent of the conversation: the score they are
    compared with in the back-test."""
    signals = lead_score.LeadSignals(
        text=None,
        inbound_messages=facts.customer_messages,
        typical_response_seconds=facts.typical_response_seconds,
        active_labels=facts.labels,
        past_orders=facts.past_orders,
    )
    intents = sum(lead_score.WEIGHTS.get(name, 0) for name in set(facts.intents))
    return lead_score.classify(signals).score + intents


@dataclass(frozen=True)
class LinearModel:
    """A fitted logistic regression: the chance of an order is sigmoid(intercept + Σ coef * x)."""

    intercept: float
    coefficients: Mapping[str, float]  # feature name -> coefficient


@dataclass(frozen=True)
class Contribution:
    feature: str
    weight: float  # coefficient * value: how far it moved the log-odds

    def reads(self) -> str:
        return f"{describe(self.feature)} {self.weight:+.2f}"


def probability(model: LinearModel, present: Mapping[str, float]) -> float:
    """The chance of an order; features the model does not know count for nothing."""
    logit = model.intercept + sum(
        model.coefficients.get(name, 0.0) * value for name, value in present.items()
    )
    return 1.0 / (1.0 + math.exp(-max(min(logit, 50.0), -50.0)))


def contributions(model: LinearModel, present: Mapping[str, float], top: int = 3) -> list[Contribution]:
    """The present features that moved the score most (either way), largest first."""
    moved = [
        Contribution(name, model.coefficients[name] * value)
        for name, value in present.items()
        if model.coefficients.get(name)
    ]
    moved.sort(key=lambda c: (-abs(c.weight), c.feature))
    return moved[:top]


def lead_class(chance: float, hot: float, warm: float) -> str:
    """Hot, warm or cold from the chance of an order and the two thresholds."""
    return lead_score.HOT if chance >= hot else lead_score.WARM if chance >= warm else lead_score.COLD


def calibration_error(labels: Sequence[int], chances: Sequence[float], bins: int = 10) -> float:
    """Expected calibration error: in ten bins of the chance given, the gap between the mean
    chance and the share that ordered, weighted by the bin's size."""
    total = 0.0
    for b in range(bins):
        inside = [
            (y, p)
            for y, p in zip(labels, chances, strict=True)
            if b / bins <= p < (b + 1) / bins or (b == bins - 1 and p == 1.0)
        ]
        if inside:
            mean_chance = sum(p for _, p in inside) / len(inside)
            share = sum(y for y, _ in inside) / len(inside)
            total += len(inside) * abs(mean_chance - share)
    return total / len(labels)
