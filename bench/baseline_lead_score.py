"""FROZEN COPY of domain/lead_score.py as it was on main before issue 21 item 3 (intent that
understands Indonesian chat), kept only so that bench.intents can measure the old rules against
the new ones in the same run. Not product code: nothing but bench/ imports it; never edit it.

Hot, warm or cold: a transparent lead score that a person can check by reading its reasons.

Points come from what the customer asks (buying intents), how engaged and quick they are, and
what we already know (labels, orders). Every contribution is listed with its points in a fixed
order, so the dashboard can show why a chat jumped the queue.

Intents are found word by word, Indonesian and English. Short words must match exactly ("tf",
"cod", "brp"); words of five letters or more tolerate a slip through ``rapidfuzz``
("pembayarn", "tranfer"), and the clitics "-nya"/"-kah"/"-lah" and stretched letters are
ignored first ("harganyaa" -> "harga"). "pagi", "halo" or "kabar" match nothing.

Besides the five buying intents there is a weak sixth, ``info`` ("info dong", "minta katalog"):
asking for information is interest, worth a warm lead, but not a hot one on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rapidfuzz import fuzz, process

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
    phrases: tuple[str, ...]


def _listed(phrases: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in phrases.split(",") if p.strip())


# In reason order. Several words of one intent in a message still count it once.
INTENTS = (
    _Intent(
        "price",
        40,
        "asks about price",
        _listed(
            """harga, hrg, hrga, berapa, brp, brapa, price, pricelist, how much, cost, diskon, promo,
            discount"""
        ),
    ),
    _Intent(
        "purchase",
        45,
        "wants to buy",
        _listed(
            """beli, mau beli, membeli, beliin, pesan, pesen, memesan, dipesan, pemesanan, order, checkout,
            buy, purchase, ambil, booking, co, keranjang"""
        ),
    ),
    _Intent(
        "payment",
        50,
        "talks about payment",
        _listed(
            """transfer, ditransfer, transferan, tf, trf, bayar, bayarin, membayar, dibayar, pembayaran,
            rekening, rek, norek, payment, pay, invoice, cod, dp, lunas, qris"""
        ),
    ),
    _Intent(
        "shipping",
        30,
        "asks about shipping",
        _listed(
            """ongkir, ongkos kirim, ongkos, kirim, dikirim, kirimin, kirimkan, pengiriman, ekspedisi,
            shipping, delivery, jne, j&t, jnt, sicepat, anteraja, resi, kurir"""
        ),
    ),
    _Intent(
        "stock",
        25,
        "asks about stock",
        _listed(
            """stok, stock, ready, redy, ready stock, tersedia, available, in stock, ukuran, size, warna,
            colour, color"""
        ),
    ),
    _Intent("info", 15, "asks for information", _listed("info, informasi, katalog, catalog, brosur, detail")),
)
WEIGHTS = {i.name: i.weight for i in INTENTS}

_FUZZY_MIN_LENGTH = 5
# fuzz.ratio >= 85: a letter missing or doubled in any word of five letters or more ("pembayarn",
# "diskn"), a wrong or swapped letter only from seven ("tranfer", "rekenig"); five- and six-letter
# words one letter apart score 80-83 and do not match ("stick" is not "stock").
_FUZZY_CUTOFF = 85
# Near misses that are other words: "hargai" (appreciate) is not "harga".
_NOT_INTENT = frozenset({"hargai", "menghargai", "border", "shopping", "transit"})


def _collapse(word: str) -> str:
    return re.sub(r"([^\W\d_])\1+", r"\1", word)


def _stem(word: str) -> str:
    """Drop a trailing clitic when two letters remain: "harganya" -> "harga", "tfnya" -> "tf"."""
    for suffix in ("nya", "kah", "lah"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 2:
            return word[: -len(suffix)]
    return word


def _tokens(text: str) -> list[tuple[str, str]]:
    """(as written, as compared) for each word; "&" stays inside a word for "j&t"."""
    return [(w, _stem(_collapse(w))) for w in re.findall(r"[^\W_]+(?:&[^\W_]+)*", text.lower())]


def _key(phrase: str) -> tuple[str, ...]:
    return tuple(compared for _, compared in _tokens(phrase))


_PHRASES: dict[tuple[str, ...], str] = {_key(p): i.name for i in INTENTS for p in i.phrases}
_LONGEST = max(len(k) for k in _PHRASES)
_FUZZY_WORDS = {k[0]: v for k, v in _PHRASES.items() if len(k) == 1 and len(k[0]) >= _FUZZY_MIN_LENGTH}
_FUZZY_CHOICES = tuple(_FUZZY_WORDS)


def _find(text: str | None) -> dict[str, str]:
    """Intent name -> the customer's own words that showed it ("berapa, harganya")."""
    if not text:
        return {}
    tokens = _tokens(text)
    found: dict[str, list[str]] = {}
    i = 0
    while i < len(tokens):
        size, name = _match_at(tokens, i)
        words = " ".join(written for written, _ in tokens[i : i + size])
        if name and words not in found.setdefault(name, []):
            found[name].append(words)
        i += size
    return {name: ", ".join(words) for name, words in found.items()}


def _match_at(tokens: list[tuple[str, str]], i: int) -> tuple[int, str | None]:
    for size in range(min(_LONGEST, len(tokens) - i), 0, -1):
        name = _PHRASES.get(tuple(compared for _, compared in tokens[i : i + size]))
        if name:
            return size, name
    # Fuzzy on the stem ("pembayarannya") and, when it differs, the whole word, in case the
    # "suffix" was part of it.
    stemmed, unstemmed = tokens[i][1], _collapse(tokens[i][0])
    if unstemmed in _NOT_INTENT:
        return 1, None
    for word in (stemmed, unstemmed) if unstemmed != stemmed else (stemmed,):
        if len(word) >= _FUZZY_MIN_LENGTH:
            best = process.extractOne(word, _FUZZY_CHOICES, scorer=fuzz.ratio, score_cutoff=_FUZZY_CUTOFF)
            if best:
                return 1, _FUZZY_WORDS[best[0]]
    return 1, None


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
