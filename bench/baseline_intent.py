"""FROZEN COPY of domain/intent.py as it was on main before issue 21 item 3 (intent that
understands Indonesian chat), kept only so that bench.intents can measure the old rules against
the new ones in the same run. Not product code: nothing but bench/ imports it; never edit it.

What a customer's message means for routing: does it need an answer, does it end the chat,
does our own text ask something, and is it an answer to the satisfaction survey.

Customers write informal, misspelt Indonesian and English ("makasiiih kak 🙏", "okeee siap").
Words are compared after lower-casing and collapsing repeated letters ("okeee" -> "oke"), the
vocabulary through the same collapse, so spelling by stretching never matters. A message is an
acknowledgement or a closing only when *every* word is from that vocabulary or a filler
("kak", "ya", "banyak"…): one other word ("tapi", "kapan", "berapa") or a "?" makes it a
message a person must read. When in doubt, the answer is "needs a reply".
"""

from __future__ import annotations

import re

from rapidfuzz import fuzz, process

ACK, THANKS, BYE, FILLER, THANKS_FILLER = "ack", "thanks", "bye", "filler", "thanks_filler"


def _collapse(word: str) -> str:
    """``makasiiih`` -> ``makasih``, ``okeee`` -> ``oke``: any run of a letter becomes one."""
    return re.sub(r"([^\W\d_])\1+", r"\1", word)


def _words(text: str) -> list[str]:
    return [_collapse(w) for w in re.findall(r"[^\W\d_]+|\d+", text.lower())]


def _listed(phrases: str) -> tuple[str, ...]:
    """A comma-separated vocabulary list as a tuple (one line per few words reads better)."""
    return tuple(p.strip() for p in phrases.split(",") if p.strip())


_VOCABULARY: dict[str, str] = {
    # Acknowledgements: "I read it", nothing to answer.
    **dict.fromkeys(
        _listed(
            """ok, oke, okey, okay, okeh, okie, k, sip, siap, noted, baik, iya, ya, y, yup, mantap, mantab,
            alright, sama sama, sama 2, yaudah, yasudah, ya sudah"""
        ),
        ACK,
    ),
    **dict.fromkeys(
        _listed(
            """terima kasih, terimakasih, trima kasih, trimakasih, terimakasi, makasih, makasi, maksih,
            makaci, macih, mksh, mksih, mks, trims, trimks, thx, thanks, thank, thank you, thank u, thanku,
            thankyou, ty, tq, tks, tengkyu"""
        ),
        THANKS,
    ),
    **dict.fromkeys(_listed("dadah, bye, bye bye, sampai jumpa, see you, see u, goodbye, good bye"), BYE),
    # Fillers: they soften or address, they never ask anything.
    **dict.fromkeys(
        _listed(
            """kak, ka, kk, kakak, gan, agan, sis, sist, bang, bg, bro, min, mimin, admin, mas, mba, mbak,
            pak, bu, om, yah, deh, dong, nya, sekali, banyak, juga, very much, so much, a lot, oh, ah, wah"""
        ),
        FILLER,
    ),
    # Only with thanks: "makasih infonya" is a closing, "ok infonya" is not.
    **dict.fromkeys(
        _listed(
            """atas, infonya, informasinya, bantuannya, bantuan, responnya, jawabannya, for the info,
            for your help, for helping"""
        ),
        THANKS_FILLER,
    ),
}
# Keys as the tokeniser sees them (collapsed), longest phrases tried first.
_PHRASES: dict[tuple[str, ...], str] = {tuple(_words(k)): v for k, v in _VOCABULARY.items()}
_LONGEST = max(len(k) for k in _PHRASES)
# Long spellings of thanks tolerate one slip ("trimaksih", "terimaksih"); short words never do,
# so "masih" (still) is not "makasih".
_FUZZY_THANKS = [k[0] for k, v in _PHRASES.items() if v == THANKS and len(k) == 1 and len(k[0]) >= 6]
_FUZZY_MIN_LENGTH, _FUZZY_CUTOFF = 7, 85


def _categories(text: str) -> set[str] | None:
    """The vocabulary categories of a text made only of vocabulary and fillers, else None."""
    words = _words(text)
    found: set[str] = set()
    i = 0
    while i < len(words):
        for size in range(min(_LONGEST, len(words) - i), 0, -1):
            category = _PHRASES.get(tuple(words[i : i + size]))
            if category:
                found.add(category)
                i += size
                break
        else:
            if len(words[i]) < _FUZZY_MIN_LENGTH or not process.extractOne(
                words[i], _FUZZY_THANKS, scorer=fuzz.ratio, score_cutoff=_FUZZY_CUTOFF
            ):
                return None
            found.add(THANKS)
            i += 1
    if THANKS_FILLER in found and THANKS not in found:
        return None
    return found


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


def needs_reply(message_type: str, text: str | None) -> tuple[bool, str]:
    """Whether a person (or the bot) should answer this message, and why in a few words."""
    if message_type in _SILENT_TYPES:
        return False, _SILENT_TYPES[message_type]
    if message_type != "text":
        return True, _MEDIA_REASONS.get(message_type, "an unsupported message")
    text = text or ""
    if "?" in text or "\uff1f" in text:
        return True, "a question"  # even "??" alone: the customer is waiting for something
    if not text.strip():
        return False, "an empty message"
    if _is_only_symbols(text):
        return False, "only emoji"
    found = _categories(text)
    if found is None or not found & {ACK, THANKS, BYE}:
        return True, "a question" if _starts_like_question(text) else "a message"
    if THANKS in found:
        return False, "thanks"
    if BYE in found:
        return False, "a goodbye"
    return False, "an acknowledgement"


def is_closing(text: str | None) -> bool:
    """The customer ended the conversation: thanks or goodbye (with fillers), not a bare "ok"."""
    if not text or "?" in text:
        return False
    found = _categories(text)
    return found is not None and bool(found & {THANKS, BYE})


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
