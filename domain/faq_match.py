"""Matching a customer's message to the business's FAQ entries, tolerant of spelling and order.

Both sides are normalised the same way (``normalise``), then compared word by word:

- every FAQ word is looked for in the message (recall: is the whole question there?) and every
  message word in the FAQ question (precision: is the message about nothing else?);
- two words are similar by ``rapidfuzz.fuzz.ratio``; below 80 they count as 0, so an unrelated
  word adds nothing instead of the ~35 that two random words score;
- the score is the mean of recall and precision, 0..100.

So "jam bukaa tokonya?" scores 96 and "jm buka toko" 93 against "jam buka toko", "toko buka jam
berapa" 88 (an extra word), while "toko" alone scores 67, "toko buka hari senin" against
"toko buka hari minggu" 75 and "berapa ongkir ke bandung" against "jam buka toko" 0.

Whole-string scorers were measured and rejected: ``token_set_ratio`` scores 100 whenever one
text's words are a subset of the other's ("toko" vs "jam buka toko"), ``WRatio`` 90 for the same
pair, and ``token_sort_ratio`` punishes a polite extra word (72 for "mau tanya jam buka toko")
yet passes one different content word (83 for "senin" vs "minggu"). Synonyms ("lokasi" for
"alamat", "bayar di tempat" for "cod") are not guessed: the FAQ lists them as variants.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from domain.intent import needs_reply


@dataclass(frozen=True)
class FaqCandidate:
    key: str
    questions: tuple[str, ...]  # variants, Indonesian and English


@dataclass(frozen=True)
class FaqMatch:
    key: str
    score: float  # 0..100
    question: str  # the variant that matched


# Words that address, greet or soften; they carry no topic. Removed as whole words only, never
# as part of one ("ka" in "kaos", "kah" in "apakah", "min" in "minggu" stay).
_FILLER_WORDS = """kak ka kk kakak gan agan sis sist min mimin admin bang bro mas mbak mba pak bu dong ya yaa
    yah nih sih deh kah halo hallo helo hello hai hi permisi tolong please pls assalamualaikum"""
FILLERS = frozenset(_FILLER_WORDS.split())
# Chat spellings of the same word, so they compare equal rather than merely similar.
_SAME_WORD = {
    **dict.fromkeys(("gimana", "gmn", "bgmn", "gmana"), "bagaimana"),
    **dict.fromkeys(("brp", "brapa"), "berapa"),
    **dict.fromkeys(("dmn", "dmana"), "dimana"),
    **dict.fromkeys(("gak", "ga", "gk", "nggak", "ngga", "enggak", "tdk"), "tidak"),
    **dict.fromkeys(("udah", "udh", "sdh"), "sudah"),
    "blm": "belum",
    "yg": "yang",
}
_JOINED = re.compile(r"\b(di|ke|dari) mana\b")  # "di mana" and "dimana" are both written
_OPENERS = re.compile(
    r"\b(?:(?:mau|mo|boleh|numpang|ingin|pengen)\s+)?(?:tanya|nanya)\b|\bselamat (?:pagi|siang|sore|malam)\b"
)
_WORD_CUTOFF = 80  # "jm"/"jam" 80, "bukaa"/"buka" 89; "jam"/"jas" 67 and below count as 0
MIN_WORDS, MIN_CHARS = 2, 4


def normalise(text: str) -> str:
    """Lower-case words without punctuation, emoji, stretched letters, clitics or fillers.

    "Kak, jam bukaa tokonyaaa?? 🙏" -> "jam bukaa toko". Runs of three or more of a letter become
    one ("sampaiii" -> "sampai"); a double is kept, since Indonesian and English both spell with
    doubles ("maaf", "good") and fuzzy matching forgives "bukaa". The clitics "-nya" and "-kah"
    are cut when three letters or more remain ("tokonya" -> "toko", "apakah" -> "apa").
    """
    text = re.sub(r"[^\w\s]|_", " ", text.casefold())
    text = re.sub(r"([^\W\d_])\1{2,}", r"\1", text)
    text = _OPENERS.sub(" ", _JOINED.sub(r"\1mana", text))
    words = []
    for word in text.split():
        for clitic in ("nya", "kah"):
            if word.endswith(clitic) and len(word) - len(clitic) >= 3:
                word = word[: -len(clitic)]
        word = _SAME_WORD.get(word, word)
        if word not in FILLERS:
            words.append(word)
    return " ".join(words)


def _coverage(words: list[str], others: list[str]) -> float:
    """Mean similarity of each word to its closest word in ``others`` (0 when none is close)."""
    total = 0.0
    for word in words:
        best = process.extractOne(word, others, scorer=fuzz.ratio, score_cutoff=_WORD_CUTOFF)
        total += best[1] if best else 0.0
    return total / len(words)


def _similarity(text: str, question: str) -> float:
    """Similarity 0..100 of two normalised texts: the mean of recall and precision."""
    asked, faq = text.split(), question.split()
    if not asked or not faq:
        return 0.0
    return round((_coverage(faq, asked) + _coverage(asked, faq)) / 2, 1)


def best_match(text: str | None, candidates: Iterable[FaqCandidate], threshold: float) -> FaqMatch | None:
    """The FAQ entry whose variant is closest to ``text``, when it scores ``threshold`` or more.

    No match for a message that needs no reply ("ok", "terima kasih", 👍) or that is under two
    words or four letters once normalised: one word ("toko", "ongkir?") is too little to answer
    for sure, so a person does. Ties go to the higher score, then to the earlier candidate.
    """
    if not text or not needs_reply("text", text)[0]:
        return None
    asked = normalise(text)
    if len(asked.split()) < MIN_WORDS or len(asked.replace(" ", "")) < MIN_CHARS:
        return None
    best: FaqMatch | None = None
    for candidate in candidates:
        for question in candidate.questions:
            similarity = _similarity(asked, normalise(question))
            if similarity >= threshold and (best is None or similarity > best.score):
                best = FaqMatch(candidate.key, similarity, question)
    return best
