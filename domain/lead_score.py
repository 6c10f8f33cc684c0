"""Hot, warm or cold: a transparent lead score that a person can check by reading its reasons.

Points come from what the customer asks (buying intents), how engaged and quick they are, and
what we already know (labels, orders). Every contribution is listed with its points in a fixed
order, so the dashboard can show why a chat jumped the queue.

Intents are read by domain.chat_intent, in context and tolerant of chat spelling: "brp
harganya" asks the price, "jam brp toko buka" the time (no intent); "ga jadi beli" cancels the
purchase; an order-status question ("resi brp", "kapan dikirim") or a complaint is no buying
intent, whatever words it uses; "mau 2 ya kak", "masih ada?", "bisa kurang?" are (an order,
stock, a price). "pagi", "halo" or "kabar" match nothing.

Besides the five buying intents there is a weak sixth, ``info`` ("info dong", "minta katalog"):
asking for information is interest, worth a warm lead, but not a hot one on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain import chat_intent

HOT, WARM, COLD = "hot", "warm", "cold"
HOT_SCORE, WARM_SCORE = 40, 15
DEFAULT_HOT_LABELS = frozenset({"hot", "hot lead", "grade a", "siap beli", "order", "pesan"})


@dataclass(frozen=True)
class LeadSignals:
    text: str | None  # the message just received
    inbound_messages: int  # customer messages in the current conversation, this one included
    typical_response_seconds: float | None  # how fast this customer usually answers us (None = unknown)
    active_labels: tuple[str, ...] = ()
    open_orders: int = 0
    past_orders: int = 0
    earlier_intent: tuple[str, ...] = ()  # intent names seen earlier in this conversation (caller keeps)


@dataclass(frozen=True)
class LeadScore:
    lead_class: str  # "hot" | "warm" | "cold"
    score: int
    reasons: tuple[str, ...]  # human readable, e.g. "asks about price (harga) +40"
    intents: tuple[str, ...]  # intent names found in this text, e.g. ("price",)


@dataclass(frozen=True)
class _Intent:
    name: str
    weight: int
    describes: str  # how a reason reads: "asks about price"


# In reason order. Several words of one intent in a message still count it once.
INTENTS = (
    _Intent(chat_intent.PRICE, 40, "asks about price"),
    _Intent(chat_intent.PURCHASE, 45, "wants to buy"),
    _Intent(chat_intent.PAYMENT, 50, "talks about payment"),
    _Intent(chat_intent.SHIPPING, 30, "asks about shipping"),
    _Intent(chat_intent.STOCK, 25, "asks about stock"),
    _Intent(chat_intent.INFO, 15, "asks for information"),
)
WEIGHTS = {i.name: i.weight for i in INTENTS}


def _find(text: str | None) -> dict[str, str]:
    """Intent name -> the customer's own words that showed it ("berapa, harganya")."""
    return chat_intent.buying_words(text)


def buying_intents(text: str | None) -> tuple[str, ...]:
    """Intent names in ``text``, in the fixed order of ``INTENTS``: ("price", "shipping")."""
    found = _find(text)
    return tuple(i.name for i in INTENTS if i.name in found)


def classify(signals: LeadSignals, hot_labels: frozenset[str] = DEFAULT_HOT_LABELS) -> LeadScore:
    """Score a lead and say why; hot at 40 points, warm at 15.

    One price question from a new number (40) is hot on its own: someone asking the price is
    ready to decide. "Halo" scores nothing (cold); "info dong" scores 15 (warm). An intent seen
    earlier adds half its weight, rounded down, unless this message shows it again; names that
    are not intents of ``INTENTS`` are ignored.
    """
    found = _find(signals.text)
    reasons: list[tuple[str, int]] = []
    for intent in INTENTS:
        if intent.name in found:
            reasons.append((f"{intent.describes} ({found[intent.name]})", intent.weight))
    earlier = set(signals.earlier_intent) - set(found)
    for intent in INTENTS:
        if intent.name in earlier:
            reasons.append((f"earlier in the conversation: {intent.describes}", intent.weight // 2))
    if signals.inbound_messages >= 6:
        reasons.append((f"{signals.inbound_messages} messages in this conversation", 15))
    elif signals.inbound_messages >= 3:
        reasons.append((f"{signals.inbound_messages} messages in this conversation", 10))
    speed = signals.typical_response_seconds
    if speed is not None and speed < 300:
        reasons.append(("usually answers within 5 minutes", 15))
    elif speed is not None and speed < 3600:
        reasons.append(("usually answers within an hour", 5))
    wanted = {label.strip().lower() for label in hot_labels}
    hot = [label for label in signals.active_labels if label.strip().lower() in wanted]
    if hot:
        reasons.append((f"labelled {', '.join(hot)}", 30))
    if signals.open_orders > 0:
        reasons.append(("has an open order", 25))
    if signals.past_orders > 0:
        reasons.append(("returning customer", 15))

    score = sum(points for _, points in reasons)
    lead_class = HOT if score >= HOT_SCORE else WARM if score >= WARM_SCORE else COLD
    listed = tuple(f"{text} +{points}" for text, points in reasons) or ("no buying signal yet",)
    return LeadScore(lead_class, score, listed, buying_intents(signals.text))
