"""Chat spelling to comparable words: the normaliser under domain.intent and domain.lead_score.

Customers write "pesennya 2 ya kk", "brp hrgnyaa", "udh tf", "makasiiih". Each word is brought
to one form, in this order:

1. lower case; "j&t" becomes "jnt"; letters and digits are split ("sama2" -> "sama 2", "150rb"
   -> "150 rb"); a comma, full stop, "?" or a line break ends a clause (a "." token), so a phrase
   never spans two clauses;
2. the clitic "-nya" (also stretched, "-nyaaa"), "-kah" or "-lah" is cut when three letters or
   more remain ("pesennya" -> "pesen", "tokonyaaa" -> "toko", "apakah" -> "apa"), *before*
   step 3, so a double letter that meets the clitic is not lost;
3. every run of a letter becomes one ("okeee" -> "oke", "maaf" -> "maf"): all vocabularies are
   collapsed the same way (``collapse``), so stretching never matters;
4. chat abbreviations and regional words become one spelling (``SAME``: "brp", "piro",
   "sabaraha" -> "berapa"; "udh", "sdh" -> "sudah"; "gak", "ngga" -> "tidak");
5. a word of five letters or more that is one slip from a word the rules look for is read as
   that word ("pembayarn" -> "pembayaran", "tranfer" -> "transfer"), by ``rapidfuzz``;
   short words never ("masih" is not "makasih", "stick" is not "stock").

A word keeps what the customer wrote beside it, so reasons quote the customer's own words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from rapidfuzz import fuzz, process

BOUNDARY = "."


@dataclass(frozen=True)
class Word:
    written: str  # as the customer typed it, lower-cased ("harganyaa"); "" for a boundary
    word: str  # as compared ("harga"); BOUNDARY between clauses


def collapse(word: str) -> str:
    """``makasiiih`` -> ``makasih``, ``okeee`` -> ``oke``: any run of a letter becomes one."""
    return re.sub(r"([^\W\d_])\1+", r"\1", word)


def listed(phrases: str) -> tuple[str, ...]:
    """A comma-separated vocabulary list as a tuple (one line per few words reads better)."""
    return tuple(p.strip() for p in phrases.split(",") if p.strip())


# Step 4: one spelling for each (keys and values are collapsed when the table is built).
_SAME_WORDS: dict[str, str] = {
    **dict.fromkeys(
        listed(
            """brp, brapa, brpa, berapaan, brapaan, brpan, brp an, piro, pira, pinten, sabaraha, sbrp,
            sbraha, brape, berape"""
        ),
        "berapa",
    ),
    **dict.fromkeys(listed("hrg, hrga, harg, hargane, regane, rega, hargana, hargi, hrgn"), "harga"),
    **dict.fromkeys(listed("gmn, gimana, bgmn, gmana, gmna, gimn, piye, kumaha"), "bagaimana"),
    **dict.fromkeys(listed("sdh, udh, udah, dah, sudh, sdah, uda, wis, wes, udha"), "sudah"),
    **dict.fromkeys(listed("blm, blum, belom, blom, durung"), "belum"),
    **dict.fromkeys(
        listed("ga, gak, nggak, ngga, engga, enggak, g, gk, tdk, nda, ndak, gag, kagak, ora, teu, tak, nggk"),
        "tidak",
    ),
    **dict.fromkeys(listed("mo, pengen, pingin, pgn, ingin, pengin, mw, mao, arep"), "mau"),
    **dict.fromkeys(listed("sy, aku, aq, gw, gue, gua, ane, kulo, ak"), "saya"),
    **dict.fromkeys(listed("yg, ingkang"), "yang"),
    **dict.fromkeys(listed("bs, bsa, isa, iso, bisakah"), "bisa"),
    **dict.fromkeys(listed("kpn, kapn"), "kapan"),
    **dict.fromkeys(listed("dmn, dmana, dimn, dimna"), "dimana"),
    **dict.fromkeys(listed("msh, masi, mash"), "masih"),
    **dict.fromkeys(listed("sampe, smpe, nyampe, nyampai, sampek, nyampek, smpai, sampainya"), "sampai"),
    **dict.fromkeys(listed("dateng, dtg"), "datang"),
    **dict.fromkeys(listed("krm, krim"), "kirim"),
    **dict.fromkeys(listed("dikrm, dikirimin, dikirm"), "dikirim"),
    **dict.fromkeys(listed("skrg, skrng, skg"), "sekarang"),
    **dict.fromkeys(listed("tlg, tolongin"), "tolong"),
    **dict.fromkeys(listed("lg, lgi"), "lagi"),
    **dict.fromkeys(listed("jd, jdi"), "jadi"),
    **dict.fromkeys(listed("aj, ajah, ajaa, saja"), "aja"),
    **dict.fromkeys(listed("tp, tpi"), "tapi"),
    **dict.fromkeys(listed("bgt, bngt, bangett, pisan, sanget"), "banget"),
    **dict.fromkeys(listed("no, nmr, nomer, nmor, nomernya"), "nomor"),
    **dict.fromkeys(listed("bli, tuku, meuli, beliin"), "beli"),
    **dict.fromkeys(listed("ambl, jupuk"), "ambil"),
    **dict.fromkeys(listed("pesenin, pesanin, psn"), "pesan"),
    **dict.fromkeys(listed("gpp, gapapa, gak papa, ga papa, gpapa, ndak papa"), "gapapa"),
    **dict.fromkeys(listed("trs, trus"), "terus"),
    **dict.fromkeys(listed("tf, trf, trnsfr, transfr, tranfer"), "transfer"),
    **dict.fromkeys(listed("ok, okey, okay, okeh, okie, k, oce, okk"), "oke"),
    **dict.fromkeys(listed("y, yup, yoi, yes, ya"), "ya"),
    **dict.fromkeys(listed("kk, ka, kakak, kaka"), "kak"),
    **dict.fromkeys(listed("klo, kalo, kl"), "kalau"),
    **dict.fromkeys(listed("bales, bls"), "balas"),
    **dict.fromkeys(listed("dibales, dibls, dibalas2, dibales2"), "dibalas"),
    **dict.fromkeys(listed("liat, lihat2"), "lihat"),
    **dict.fromkeys(listed("cek, ngecek, check, dicek"), "cek"),
    **dict.fromkeys(listed("dgn, dg"), "dengan"),
    **dict.fromkeys(listed("utk, untk"), "untuk"),
    **dict.fromkeys(listed("kabarin, kabari, dikabarin, dikabari"), "kabari"),
    **dict.fromkeys(listed("tgl"), "tanggal"),
    **dict.fromkeys(listed("cepet, cpt"), "cepat"),
    **dict.fromkeys(listed("bgs"), "bagus"),
    **dict.fromkeys(listed("abis, hbs, habs"), "habis"),
    **dict.fromkeys(listed("pesananku, pesenanku"), "pesanan"),
    **dict.fromkeys(listed("orderanku, orderku"), "orderan"),
    **dict.fromkeys(listed("paketku"), "paket"),
    **dict.fromkeys(listed("barangku"), "barang"),
}
SAME: dict[str, str] = {collapse(k): collapse(v) for k, v in _SAME_WORDS.items() if " " not in k}
# Some "-nya" endings are not the clitic: "punya", "tanya", "hanya" keep it (fewer than three
# letters remain); these do too.
_KEEP_ENDING = frozenset(
    collapse(w)
    for w in listed(
        """bertanya, ditanya, menanya, masalah, sekolah, sebelah, jumlah, istilah, allah, alhamdulillah,
        insyaallah, masyaallah, subhanallah, langkah, nikah, olah, terlah, kelah, bilah, mudah"""
    )
)
_CLITIC = re.compile(r"^(.{3,}?)(?:ny+a+|ka+h+|la+h+)$")
_TOKEN = re.compile(r"[^\W\d_]+|\d+|[,.!?;:\n\uff1f]+")
_FUZZY_MIN_LENGTH, _FUZZY_CUTOFF = 5, 85


def _strip_clitic(word: str) -> str:
    if collapse(word) in _KEEP_ENDING:
        return word
    match = _CLITIC.match(word)
    return match.group(1) if match else word


class Vocabulary:
    """The words the rules look for, so that a slip in a long one still finds it."""

    def __init__(self, words: Iterable[str], not_words: Iterable[str] = ()) -> None:
        self.words = frozenset(collapse(w) for w in words)
        self.long = tuple(sorted(w for w in self.words if len(w) >= _FUZZY_MIN_LENGTH))
        self.not_words = frozenset(collapse(w) for w in not_words)

    def correct(self, word: str) -> str:
        if len(word) < _FUZZY_MIN_LENGTH or word in self.words or word in self.not_words:
            return word
        best = process.extractOne(word, self.long, scorer=fuzz.ratio, score_cutoff=_FUZZY_CUTOFF)
        return best[0] if best else word


def words(text: str | None, vocabulary: Vocabulary | None = None) -> list[Word]:
    """The comparable words of ``text``, with clause boundaries; none at either end."""
    if not text:
        return []
    lowered = re.sub(r"j\s*&\s*t", "jnt", text.lower())
    found: list[Word] = []
    for token in _TOKEN.findall(lowered):
        if not token[0].isalnum():
            if found and found[-1].word != BOUNDARY:
                found.append(Word("", BOUNDARY))
            continue
        word = token if token.isdigit() else collapse(_strip_clitic(token))
        word = SAME.get(word, word)
        if vocabulary is not None and not word.isdigit():
            word = vocabulary.correct(word)
        found.append(Word(token, word))
    while found and found[-1].word == BOUNDARY:
        found.pop()
    return found
