"""What a customer's message means for routing: does it need an answer, does it end the chat,
does our own text ask something, and is it an answer to the satisfaction survey.

Customers write informal, misspelt Indonesian and English ("makasiiih kak 🙏", "okeee siap",
"makasih ya kak, barangnya udah sampe"). What a text message is about is read by
domain.chat_intent (one intent, with context: "jam brp" is a time, "brp harganya" a price). A
message needs no reply only when it is thanks, a goodbye or an acknowledgement with nothing but
polite or confirming words ("oke ditunggu kak", "matur nuwun"), or another business's automatic
reply or spam; one other word ("tapi", "kapan", "berapa") or a "?" makes it a message a person
must read. When in doubt, the answer is "needs a reply".
"""

from __future__ import annotations

import re

from domain import chat_intent
from domain.chat_words import collapse as _collapse


def _words(text: str) -> list[str]:
    return [_collapse(w) for w in re.findall(r"[^\W\d_]+|\d+", text.lower())]


def _listed(phrases: str) -> tuple[str, ...]:
    """A comma-separated vocabulary list as a tuple (one line per few words reads better)."""
    return tuple(p.strip() for p in phrases.split(",") if p.strip())


def _is_only_symbols(text: str) -> bool:
    """Emoji, punctuation and spaces only (👍🙏, "...", ""): no letter or digit at all."""
    return not any(ch.isalnum() for ch in text)


_MEDIA_REASONS = {
    "image": "an image",
    "video": "a video",
    "audio": "an audio message",
    "document": "a document",
    "location": "a location",
    "contacts": "a contact card",
    "order": "an order",
    "interactive": "a button reply",
    "button": "a button reply",
}
# Nothing for a person to answer: a reaction or sticker is a gesture, a revoke withdraws a
# message, a system notice (number changed) is not from the customer's keyboard.
_SILENT_TYPES = {
    "reaction": "a reaction",
    "sticker": "a sticker",
    "revoke": "a deleted message",
    "system": "a system notice",
}
_NO_REPLY_REASONS = {
    chat_intent.THANKS: "thanks",
    chat_intent.CLOSING: "a goodbye",
    chat_intent.ACK: "an acknowledgement",
    chat_intent.AUTO_REPLY_OR_SPAM: "an automatic reply or spam",
}
_REPLY_REASONS = {
    chat_intent.COMPLAINT: "a complaint",
    chat_intent.ORDER_STATUS: "a question about an order",
}


def needs_reply(message_type: str, text: str | None) -> tuple[bool, str]:
    """Whether a person (or the bot) should answer this message, and why in a few words."""
    if message_type in _SILENT_TYPES:
        return False, _SILENT_TYPES[message_type]
    if message_type != "text":
        return True, _MEDIA_REASONS.get(message_type, "an unsupported message")
    text = text or ""
    if not text.strip():
        return False, "an empty message"
    reading = chat_intent.read_message(text)
    if reading.intent == chat_intent.AUTO_REPLY_OR_SPAM:
        return False, _NO_REPLY_REASONS[reading.intent]
    if "?" in text or "\uff1f" in text:
        # even "??" alone: the customer is waiting for something
        return True, _REPLY_REASONS.get(reading.intent, "a question")
    if _is_only_symbols(text):
        return False, "only emoji"
    if not reading.needs_reply:
        return False, _NO_REPLY_REASONS[reading.intent]
    if reading.intent in _REPLY_REASONS:
        return True, _REPLY_REASONS[reading.intent]
    return True, "a question" if reading.asks or _starts_like_question(text) else "a message"


def is_closing(text: str | None) -> bool:
    """The customer ended the conversation: thanks or goodbye (with polite words), not an "ok"."""
    if not text or "?" in text:
        return False
    return chat_intent.read_message(text).intent in (chat_intent.THANKS, chat_intent.CLOSING)


# A sentence (or comma clause) opening with one of these asks something even without "?":
# "Apakah pesanannya sudah diterima", "Mau dikirim hari ini kak".
_QUESTION_STARTS = frozenset(
    _listed(
        """apakah, apa, bagaimana, gimana, gmn, bgmn, mau, bisa, boleh, kapan, berapa, brp, siapa, dimana,
        kemana, darimana, mengapa, kenapa, adakah, sudahkah, do, does, did, can, could, would, will, shall,
        should, may, is, are, what, when, where, which, who, why, how"""
    )
)
_QUESTION_START_PHRASES = (("ada", "yang"), ("di", "mana"))
# ...or closing with a tag that asks for a yes/no: "Sudah diterima belum", "Jadi order kan".
_QUESTION_ENDS = frozenset(_listed("belum, blm, kan, bukan, tidak, nggak, ngga, gak, ga, enggak"))
# Addressing before the question does not hide it: "Kak, apakah …", "Halo Budi, mau …".
_OPENERS = frozenset(
    _listed(
        """halo, hallo, hai, hi, hello, kak, ka, kakak, pak, bu, gan, sis, mas, mbak, mba, bang, permisi,
        maaf, nah, jadi, lalu, terus, oh"""
    )
)


def _starts_like_question(text: str) -> bool:
    for clause in re.split(r"[.!,;:\n]+", text):
        words = [w for w in re.findall(r"[^\W\d_]+", clause.lower())]
        while words and words[0] in _OPENERS:
            words.pop(0)
        if not words:
            continue
        first = words[0]
        if first in _QUESTION_STARTS or (len(first) >= 6 and first.endswith("kah")):
            return True
        if tuple(words[:2]) in _QUESTION_START_PHRASES or (len(words) > 1 and words[-1] in _QUESTION_ENDS):
            return True
    return False


def asks_question(text: str | None) -> bool:
    """Does our outbound text ask the customer something (so silence after it means something)?

    A "?" anywhere; otherwise a sentence or comma clause that opens with a question word
    (apakah, bagaimana, gimana, mau, bisa, boleh, ada yang, kapan, berapa, any "-kah" word,
    English what/can/do…) or ends on a yes/no tag (belum, kan, tidak, gak). Greetings and names
    of address before it are skipped. Not a parser: "Mau info promo? Balas YA" is found by the
    "?"; a statement that happens to start with "bisa" counts as a question, which only makes a
    follow-up possible, never sends one by itself.
    """
    if not text:
        return False
    return "?" in text or "\uff1f" in text or _starts_like_question(text)


# Survey answers. Numbers: "5", "4/5", "4 dari 5", "nilai 3", "5 bintang"; stars: "⭐⭐⭐⭐".
_STARS = "⭐★🌟"
_RATING_WORDS = r"(?:nilai|rating|rate|skor|score|bintang|beri|kasih|kasi|saya|aku|sy)"
_RATING = re.compile(
    rf"^(?:{_RATING_WORDS}\s*)*(\d{{1,2}})\s*(?:(?:/|dari|out of)\s*5|bintang|stars?|star)?$"
)
_RATING_FILLERS = frozenset({"kak", "ka", "kk", "min", "gan", "sis", "ya", "deh", "dong", "sih", "nih"})
_RATING_PHRASES: dict[str, int] = {
    **dict.fromkeys(
        _listed(
            """sangat puas, puas sekali, puas banget, puas bgt, sangat memuaskan, very satisfied, excellent,
            very good, sangat baik, sangat bagus"""
        ),
        5,
    ),
    **dict.fromkeys(_listed("puas, memuaskan, satisfied, bagus, good"), 4),
    **dict.fromkeys(_listed("biasa, biasa saja, biasa aja, cukup, cukup puas, lumayan, neutral, average"), 3),
    **dict.fromkeys(_listed("kurang puas, kurang, kurang memuaskan, kurang bagus, kurang baik, poor"), 2),
    **dict.fromkeys(
        _listed(
            """tidak puas, tdk puas, gak puas, ga puas, nggak puas, ngga puas, enggak puas, sangat tidak puas,
            kecewa, sangat kecewa, tidak memuaskan, unsatisfied, dissatisfied, very dissatisfied,
            very unsatisfied, bad, very bad, buruk, jelek"""
        ),
        1,
    ),
}
# Looked up after the same letter collapse as the answer ("puaaas" -> "puas", "good" -> "god").
_RATINGS = {" ".join(_words(k)): v for k, v in _RATING_PHRASES.items()}


def survey_rating(text: str | None) -> int | None:
    """A satisfaction answer from 1 to 5, or None when the text is not one.

    Only a whole answer counts: "pesanan 12345 belum sampai" holds a number but is no rating,
    "10" is out of range, and a bare "ok" is not mapped (it may just acknowledge the question).
    """
    if not text:
        return None
    lowered = re.sub(r"\s*/\s*", "/", text.lower().replace("\ufe0f", ""))
    stars = sum(lowered.count(s) for s in _STARS)
    for s in _STARS:
        lowered = lowered.replace(s, " bintang ")
    words = [_collapse(w) for w in re.findall(r"[^\W_]+(?:/\d+)?|/\d+", lowered)]
    words = [w for w in words if w not in _RATING_FILLERS]
    cleaned = " ".join(words)
    if stars and not any(ch.isdigit() for ch in cleaned):
        rest = [w for w in words if w not in {"bintang", "beri", "kasih", "kasi", "saya", "aku"}]
        return min(stars, 5) if not rest else None
    match = _RATING.match(cleaned)
    if match:
        value = int(match.group(1))
        return value if 1 <= value <= 5 else None
    return _RATINGS.get(cleaned)
