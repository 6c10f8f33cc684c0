"""What a customer's chat message is about: one intent, whether it needs an answer, and the
buying intents in it with the customer's own words.

The message is first brought to comparable words (domain.chat_words: "brp" -> "berapa",
"pesennya" -> "pesen", "udh" -> "sudah"), then read by phrase rules in this order, the first
that applies deciding the intent:

1. **another business's automatic reply, or spam** ("Terima kasih telah menghubungi …",
   "pesan otomatis", "slot gacor", "pinjaman online cair"): no reply;
2. **thanks, a goodbye or an acknowledgement**, when every other word is polite or confirms
   ("makasih ya kak, barangnya udah sampe", "oke ditunggu kak", "matur nuwun", "hatur nuhun"):
   no reply. One word outside that vocabulary ("tapi", "kapan", "tolong", "2") or a "?" and the
   message is read on, and needs a reply;
3. **a complaint** (rusak, salah kirim, kurang 1, refund, "kok lama") and **an order-status
   question** (resi, "kapan dikirim", "pesanan saya", "sudah sampai mana"): a reply, but no
   buying intent: the words "dikirim", "transfer" or "pesanan" in them are about an order
   already placed;
4. **buying intents** by context, not by word alone: "berapa" is a price unless it is about a
   time ("jam brp"), an age ("umur brp"), a number ("no wa brp", "resi brp": an order's status),
   an account ("rekening brp": payment) or how long ("brp hari sampai": shipping); "pesan" is an
   order unless it is a message ("pesan saya belum dibalas", "kirim pesan"); a negation before a
   buying word cancels it ("ga jadi beli", "belum mau order"); stock is asked without "stok"
   ("masih ada?", "ada warna merah?"); haggling is a price ("bisa kurang?", "nego"); an order
   needs no order word ("mau 2 ya kak", "ambil yang hitam 1"); a donation or a sign-up is a
   purchase ("mau donasi", "daftar reseller");
5. **a question** (a "?", a question word, opening hours, address), else **other** (a greeting,
   a statement): both need a reply.

When in doubt a message needs a reply: only rules 1 and 2 ever say it does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from domain.chat_words import BOUNDARY, Vocabulary, Word, collapse, listed, words

# Intents a message can have (bench/data/README.md describes each).
PRICE, PURCHASE, PAYMENT, SHIPPING, STOCK, INFO = "price", "purchase", "payment", "shipping", "stock", "info"
ORDER_STATUS, COMPLAINT, QUESTION, OTHER = "order_status", "complaint", "question", "other"
THANKS, CLOSING, ACK, AUTO_REPLY_OR_SPAM = "thanks", "closing", "ack", "auto_reply_or_spam"
BUYING = (PRICE, PURCHASE, PAYMENT, SHIPPING, STOCK, INFO)
NO_REPLY = (THANKS, CLOSING, ACK, AUTO_REPLY_OR_SPAM)
INTENTS = (*BUYING, ORDER_STATUS, COMPLAINT, QUESTION, *NO_REPLY, OTHER)
# When a message shows several buying intents, the one it is mostly about.
_LABEL_ORDER = (PRICE, PURCHASE, PAYMENT, SHIPPING, INFO, STOCK)


@dataclass(frozen=True)
class Reading:
    intent: str  # one of INTENTS
    needs_reply: bool
    buying: dict[str, str] = field(default_factory=dict)  # buying intent -> the customer's words
    asks: bool = False  # a "?" or a question word: the customer waits for an answer


def _rx(source: str) -> re.Pattern[str]:
    """A pattern over compared words, written with normal spelling and collapsed like them
    (a letter of an escape such as the "b" of "\\b" is left alone: "\\bbelum" stays)."""
    return re.compile(re.sub(r"(?<!\\)([^\W\d_])\1+", r"\1", source))


def _alt(*groups: str) -> str:
    return "|".join(w for group in groups for w in listed(group))


# --- 1. automatic replies and spam (on the text itself: they are written, not typed) ----------

_AUTO_REPLY = re.compile(
    r"pesan (ini )?(otomatis|dikirim (secara )?otomatis)|balasan otomatis|dikirim (secara )?otomatis"
    r"|auto[ -]?reply|automated message|automatic reply|this is an auto"
    r"|(terima ?kasih|makasih) (telah|sudah|atas) (menghubungi|menghubungi kami)"
    r"|thank you for (contacting|reaching out|your message)|we will get back to you|our team will"
    r"|mohon (untuk )?tidak membalas|sila(h)?kan pilih menu"
    r"|(kami|admin( kami)?) (akan )?(segera )?(membalas|menghubungi (anda|kakak)|merespon)"
    r"|(kami|admin( kami)?) sedang (offline|tutup|libur|tidak dapat|istirahat)"
    r"|(pesan|chat) (anda|kakak) (akan )?(segera )?(kami )?(dibalas|balas|di ?luar jam)"
    r"|di ?luar jam (kerja|operasional) kami|currently (away|unavailable|closed)"
    r"|\bwe (a)?re (closed|away|offline)|\bwe( wi| )ll (reply|respond|get back)"
)
_SPAM = re.compile(
    r"slot gacor|maxwin|judi online|pinjol|pinjaman (online|dana|tanpa|cepat)|dana cepat cair"
    r"|tanpa jaminan|memenangkan|undian|anda terpilih|terpilih (men)?dapatkan|saldo (dana )?gratis"
    r"|investasi.{0,40}profit|profit \d+ ?%|followers|togel|casino"
)
_SPAM_HINTS = re.compile(
    r"klik|link|https?:|bit\.ly|wa\.me|gratis|hadiah|saldo|klaim|telegram|promo gila|profit"
    r"|penghasilan|\bjuta\b|bonus|daftar sekarang|\bgaji\b|kerja dari rumah|work from home"
)


def _automatic(text: str) -> bool:
    lowered = re.sub(r"\s+", " ", re.sub(r"[^\w\s%:./-]", " ", text.lower()))
    if _AUTO_REPLY.search(lowered) or _SPAM.search(lowered):
        return True
    return len(set(_SPAM_HINTS.findall(lowered))) >= 3


# --- 2. thanks, goodbyes, acknowledgements --------------------------------------------------------

_THANKS_WORDS = listed(
    """terima kasih, terimakasih, trima kasih, trimakasih, terimakasi, makasih, makasi, maksih, makaci,
    macih, mksh, mksih, mks, trims, trimks, thx, thanks, thank, thank you, thank u, thanku, thankyou, ty,
    tq, tks, tengkyu, tengkiu, matur nuwun, maturnuwun, matur suwun, matursuwun, suwun, nuwun, hatur nuhun,
    haturnuhun, nuhun"""
)
_BYE_WORDS = listed(
    """dadah, bye, bye bye, sampai jumpa, see you, see u, goodbye, good bye, sampai ketemu, itu aja, gitu aja,
    segitu aja, segitu dulu, sudah itu aja, itu dulu"""
)
_ACK_WORDS = listed(
    """oke, sip, siap, noted, baik, iya, ya, mantap, mantab, alright, sama sama, sama 2, yaudah, ya sudah,
    nggih, enggih, inggih, njih, injih, muhun, sampun, gapapa, got it, beres, aman, ditunggu, tunggu, okelah,
    oh gitu, cool, great, fine, sure"""
)
# Polite or confirming words that may come with thanks or an "ok" and ask nothing.
_POLITE = frozenset(
    collapse(w)
    for w in listed(
        """kak, gan, agan, sis, sist, bang, bro, min, mimin, admin, mas, mba, mbak, pak, bu, om, teh,
        kang, aa,
        akang, teteh, dek, dik, cantik, ganteng, yah, deh, dong, nya, nih, sih, loh, lho, sekali,
        banyak, juga,
        very, much, so, a, lot, oh, ah, wah, wow, hehe, hihi, wkwk, haha, sudah, sampai, datang, diterima,
        terima, barang, paket, pesanan, orderan, saya, kami, dengan, baik, aman, sesuai, bagus, mantap, keren,
        cepat, rapi, ramah, pelayanan, puas, suka, love, it, kualitas, recommended, rekomended, sukses, terus,
        selalu, semoga, laris, lancar, berkah, sehat, amin, aamiin, nanti, besok, kabari, dibantu, bantu,
        dikirim, banget, dulu, gitu, lagi, ok, yes, you, jg, bener, sangat, nice, good, all, ini, semua,
        the, is, dear, sis, tetap, fast, respon, makin, tambah"""
    )
)
# Only with thanks: "makasih infonya" is a closing, "ok info dong" is not.
_THANKS_POLITE = frozenset(
    collapse(w)
    for w in listed("atas, info, informasi, bantuan, respon, jawaban, for, your, help, helping, semuanya")
)
# "nanti order lagi ya" with thanks is a promise, not an order now.
_LATER_AGAIN = _rx(
    r"\b(nanti|next|lain kali|besok|kapan 2|kapan kapan)( saya)? (order|beli|pesan|belanja)( lagi)?\b"
)


def _phrase_table() -> dict[tuple[str, ...], str]:
    table: dict[tuple[str, ...], str] = {}
    for category, phrases in ((ACK, _ACK_WORDS), (CLOSING, _BYE_WORDS), (THANKS, _THANKS_WORDS)):
        for phrase in phrases:
            table[tuple(w.word for w in words(phrase))] = category
    return table


_POLITE_PHRASES = _phrase_table()
_LONGEST = max(len(k) for k in _POLITE_PHRASES)


def _polite_only(text_words: list[str]) -> str | None:
    """THANKS, CLOSING or ACK when the message is only that and polite words, else None."""
    found: set[str] = set()
    rest: list[str] = []
    i = 0
    while i < len(text_words):
        for size in range(min(_LONGEST, len(text_words) - i), 0, -1):
            category = _POLITE_PHRASES.get(tuple(text_words[i : i + size]))
            if category:
                found.add(category)
                i += size
                break
        else:
            if text_words[i] != BOUNDARY:
                rest.append(text_words[i])
            i += 1
    if not found:
        return None
    allowed = _POLITE | (_THANKS_POLITE if THANKS in found else frozenset())
    if any(w not in allowed for w in rest):
        return None
    return CLOSING if CLOSING in found else THANKS if THANKS in found else ACK


# --- 3. complaints and orders already placed ------------------------------------------------------

_COMPLAINT = _rx(
    r"\b("
    + _alt(
        """rusak, cacat, pecah, sobek, robek, penyok, bocor, basi, jamuran, kekecilan, kebesaran, kecewa,
        komplain, complain, komplen, retur, return, refund, hilang, zonk, jelek, penipu, tipu, nipu, broken,
        damaged, missing, disappointed, complaint, luntur, tidak sesuai, kurang sesuai, not as described"""
    )
    + r")\b"
    r"|\bsalah (kirim|ukuran|warna|barang|size)\b(?! (pesan|chat))|\bwrong (item|size|color|colour)\b"
    r"|\bbeda\b|\bkurang (\d+|satu|dua|lengkap)\b|\b(dikembalikan|dibalikin)\b|\btukar\b"
    r"|\b(kok|lama) (lama|banget|sekali|amat)\b|\blama banget\b|\b(tidak|belum) dibalas\b|\bdibalas 2\b"
    r"|\b(\d+ hari|seminggu|sebulan|\d+ minggu) (belum|tidak)\b|\b(isi|barang|jumlah|paket) (\w+ )?kurang\b"
    r"|\b(kegedean|kekecilan|kebesaran)\b"
)
_ORDER_STATUS = _rx(
    r"\b(resi|tracking|lacak|track|shipped|diproses|dikemas)\b"
    r"|\b(kapan|jam berapa|kira 2 kapan) (\w+ )?(di)?(kirim|sampai|datang|proses|antar|diantar)\b"
    r"|\bbelum ada (kabar|resi|info|konfirmasi)\b"
    r"|\bbelum (di)?(kirim|sampai|datang|diproses|proses|dikemas|terima)\b"
    r"|\b(pesanan|orderan)\b.{0,20}\b(dibatalkan|dibatalin|batal|cancel)\b|\bkok (pesanan|orderan|paket)\b"
    r"|\b(sudah|apa sudah|apakah sudah) (di)?(kirim|sampai|datang)( \w+)? (belum|tidak|kan)\b"
    r"|\bdikirim (kan|belum)\b|\bsampai mana\b|\bstatus\b"
    r"|\b(pesanan|orderan|paket|order|barang) (saya|kami|atas nama|nomor|\d+|kemarin|tadi|minggu)\b"
    r"|\bcek (pesanan|orderan|paket|order)\b|\b(pesanan|orderan|paket) .{0,20}\b(gimana|bagaimana|kabar)\b"
    r"|\bkok belum\b|\bmy (order|package|parcel)\b|\bbeen (shipped|sent)\b|\bwhere is my\b"
)
_NEW_ORDER = _rx(
    r"\b(pesanan|orderan) baru\b|\b(mau|saya) (order|beli|pesan|pesen) lagi\b|\b(order|beli|pesen) \d"
)

# --- 4. buying intents ------------------------------------------------------------------------------

_NEGATED = _rx(
    r"\b(tidak|belum|batal) (jadi|mau|usah|perlu|beli|order|pesan|pesen|ambil|checkout)\b"
    r"|\b(batal|cancel|dibatalkan|batalin|cancelled)\b|\bnot (buy|order)\b"
    r"|\bnanti (aja|dulu|saja)\b|\blain kali\b|\bbelum dulu\b"
)
_NUMBER = r"(\d+|satu|dua|tiga|empat|lima|enam|sepuluh|selusin|one|two|three)"
_COLOURS = _alt(
    """merah, hitam, putih, biru, hijau, kuning, abu, navy, pink, ungu, coklat, cokelat, cream, krem,
    pastel, maroon, tosca, orange, oranye, silver, gold, emas, mocca, mint, army, olive, black, white,
    blue, red, green, grey, gray"""
)
_VARIANT = _alt(
    "warna, ukuran, size, varian, variant, model, motif, tipe, type, rasa, seri, jenis, colour, color"
)
_FILLERS = frozenset(
    collapse(w)
    for w in listed(
        """kak, gan, agan, sis, sist, bang, bro, min, mimin, admin, mas, mba, mbak, pak, bu, om, teh, kang,
        ya, yah, deh, dong, nih, sih, nya, an, tuh, ini, itu, lagi, ieu, iki, niki"""
    )
)

_PHRASE_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        PRICE,
        _rx(
            r"\b("
            + _alt(
                """harga, price, pricelist, pricelis, cost, diskon, discount, disc, promo, potongan,
                nego, negosiasi,
                murahin, kurangin, tawar, nawar, ditawar, mahal, kemahalan, lebih murah, total, tarif, biaya,
                duit, how much, last price, harga pas, daftar harga"""
            )
            + r")\b|\b(bisa|boleh|masih|tidak bisa) kurang\b|\bkurang (dikit|lagi|dong|sedikit)\b"
        ),
    ),
    (
        PURCHASE,
        _rx(
            r"\b("
            + _alt(
                """beli, membeli, pembelian, checkout, co, booking, buy, purchase, keranjang, keep, dikeep,
                bungkus, pesen, memesan, pemesanan, donasi, sedekah, infaq, infak, zakat, wakaf, mendaftar,
                registrasi, register, join, gabung, reseller, dropship, dropshipper, member"""
            )
            + r")\b"
            + rf"|\bdaftar\b(?! harga)|\b(nambah|tambah) {_NUMBER}\b"
            + rf"|\b(mau|minta|ambil|jadi|kirimin) (yang )?{_NUMBER}\b"
            + rf"|\b(mau|ambil|minta) yang\b|\b(yang|warna) \w+ {_NUMBER}( (ya|aja|kak|pcs)|$| \.)"
            + r"|^(iya|ya|oke|boleh)( kak)? mau\b|\bpesanan baru\b"
            + rf"|\b{_NUMBER} (pcs|biji|buah|box|lusin|kodi|porsi|pack)\b"
            + r"|\bi want (to buy|two|\d)|\bcan i (order|buy|get)\b"
        ),
    ),
    (
        PAYMENT,
        _rx(
            r"\b("
            + _alt(
                """transfer, ditransfer, transferan, bayar, membayar, dibayar, pembayaran, rekening,
                rek, norek,
                payment, pay, invoice, cod, dp, lunas, qris, gopay, ovo, shopeepay, virtual account,
                bca, bri, bni,
                mandiri, bukti transfer, cicil, dicicil, cicilan, kredit, angsuran, paylater, mayar"""
            )
            + r")\b"
        ),
    ),
    (
        SHIPPING,
        _rx(
            r"\b("
            + _alt(
                """ongkir, ongkos, ekspedisi, kurir, jne, jnt, sicepat, anteraja, gosend, grabexpress, instan,
                instant, sameday, same day, pengiriman, delivery, shipping, ship, cargo, luar kota,
                luar pulau,
                pos indonesia, ninja, send, ship it"""
            )
            + r")\b|\b(di)?kirim(in|kan)?\b"
            + r"(?! (nomor|foto|gambar|katalog|info|detail|alamat|link|video|pricelist|pesan|chat|bukti"
            + r"|lokasi))"
        ),
    ),
    (
        STOCK,
        _rx(
            r"\b("
            + _alt(
                """stok, stock, ready, redy, tersedia, available, habis, kosong, sold, soldout, restock,
                in stock, do you have, have it, masih ada, masih bisa dipesan"""
            )
            + rf")\b|\bada (yang|{_VARIANT}|{_COLOURS}|\d+)\b"
            + rf"|\b({_VARIANT}|{_COLOURS}|\d+) (\w+ )?(\w+ )?ada\b"
            + r"|\bmasih( (kak|ya|gan|sis|min|tidak))?( \.|$)|^masih( (kak|ya|gan|sis|min))? yang\b"
            + r"|\bada (tidak|kah)\b|\b(size|ukuran) (apa|yang mana)\b"
            + r"|\b(warna|ukuran|size|model) (\w+ )?(bisa )?(ganti|tukar)\b"
            + r"|\bpunya (yang|stok|stock|warna|ukuran|size)\b"
        ),
    ),
    (
        INFO,
        _rx(
            r"\b("
            + _alt(
                """info, informasi, katalog, catalog, brosur, detail, spesifikasi, spek, spec, bahan,
                material,
                original, ori, asli, real pict, video, foto, keterangan, review, testimoni"""
            )
            + r")\b"
        ),
    ),
)
# "ada" that is not about stock: "ada pesan", "ada cabang", "ada yang bisa".
_ADA_ELSEWHERE = _rx(r"\bada (pesan|cabang|alamat|yang bisa|apa|promo|diskon|rekening)\b")
# "ambil" that is a pick-up, not an order: "ambil di toko", "ambil langsung".
_PICK_UP = _rx(r"\bambil (di|langsung|sendiri|ke|dari)\b|\bnanti ambil\b")
# "pesan" as a message: "pesan saya belum dibalas", "kirim pesan", "ada pesan dari kurir".
_MESSAGE_BEFORE = frozenset(
    collapse(w) for w in listed("kirim, balas, baca, dapat, dapet, terima, ada, wa, sms, chat, salah, isi")
)
_MESSAGE_AFTER = frozenset(
    collapse(w)
    for w in listed(
        """saya, dari, masuk, terkirim, dibalas, dibaca, tadi, otomatis, kamu, anda, kemarin, sudah, belum,
        tidak, ke, singkat, suara"""
    )
)

_MESSAGE_LATER = frozenset(collapse(w) for w in listed("tadi, kemarin, abaikan, hapus, dibalas, dibaca"))

_COST = frozenset(collapse(w) for w in listed("harga, biaya, tarif, ongkos"))
_SHIPPING_COST = frozenset(collapse(w) for w in listed("ongkir, kirim, pengiriman, ekspedisi"))

# "berapa" and what it asks about, by a word near it in the same clause.
_BERAPA = "berapa"
_OF_TIME = frozenset(collapse(w) for w in listed("jam, pukul, tanggal, menit, kali, detik"))
_OF_AGE = frozenset(collapse(w) for w in listed("umur, usia, kelas, tahun, bulan, orang, lantai"))
_OF_NUMBER = frozenset(
    collapse(w) for w in listed("nomor, wa, hp, telp, telepon, kode, id, akun, nik, pin, whatsapp")
)
_OF_DURATION = frozenset(collapse(w) for w in listed("hari, lama, minggu"))
_ON_THE_WAY = frozenset(
    collapse(w) for w in listed("sampai, kirim, dikirim, datang, pengiriman, estimasi, proses, diproses")
)
_OF_SIZE = frozenset(collapse(w) for w in listed("ukuran, size, sisa, stok, stock, tersisa"))


def _berapa_asks(ws: list[str], i: int) -> str:
    """What the "berapa" at ``ws[i]`` asks about: PRICE unless a word near it says otherwise."""
    start, end = i, i
    while start > 0 and ws[start - 1] != BOUNDARY:
        start -= 1
    while end + 1 < len(ws) and ws[end + 1] != BOUNDARY:
        end += 1
    before = [w for w in ws[start:i] if w not in _FILLERS][-4:]
    after = [w for w in ws[i + 1 : end + 1] if w not in _FILLERS][:3]
    near = set(before) | set(after)
    clause = set(ws[start : end + 1])
    if "resi" in near:
        return ORDER_STATUS
    if near & {"rekening", "rek", "norek"}:
        return PAYMENT
    if near & (_OF_TIME | _OF_AGE | _OF_NUMBER):
        return QUESTION
    if near & _OF_DURATION:
        return SHIPPING if clause & _ON_THE_WAY else QUESTION
    if near & _OF_SIZE:
        return STOCK
    return PRICE


# --- 5. questions -----------------------------------------------------------------------------------

_QUESTION_WORDS = frozenset(
    collapse(w)
    for w in listed(
        """apa, apakah, bagaimana, kapan, berapa, siapa, dimana, kemana, darimana, mengapa, kenapa, adakah,
        tanya, nanya, bisa, boleh, buka, tutup, cara, halal, kok, what, when, where,
        which, who, why, how, can, could, do, does, is, are"""
    )
)
_AT_WHAT_TIME = _rx(r"\b(jam|pukul) berapa\b")
_WHERE = _rx(r"\b(di|ke|dari) mana\b")
_QUESTION_ENDS = frozenset(collapse(w) for w in listed("belum, kan, bukan, tidak, ya kan"))

# Every literal word of the rules: a slip in a long one is still read as it.
_VOCABULARY = Vocabulary(
    {
        w
        for source in [
            _COMPLAINT.pattern,
            _ORDER_STATUS.pattern,
            *(p.pattern for _, p in _PHRASE_RULES),
            ",".join(_THANKS_WORDS),
        ]
        for w in re.findall(r"[a-z]{5,}", re.sub(r"\\[a-zA-Z]", " ", source))
    },
    not_words=listed(
        """hargai, menghargai, border, shopping, transit, masih, kasih, sampah, pesawat, ambilin, harganya,
        resiko, risiko, tanya, bertanya, karena, kirain, setiap, sampai, senang, terima, sudah, salah,
        pesanan,
        orderan, habiskan"""
    ),
)


def _spans(pattern: re.Pattern[str], joined: str, starts: list[int]) -> list[list[int]]:
    """The word indexes of each match of ``pattern`` in ``joined`` (words joined by spaces)."""
    found = []
    for match in pattern.finditer(joined):
        a, b = match.span()
        found.append([k for k, s in enumerate(starts) if a <= s < b])
    return [f for f in found if f]


@lru_cache(maxsize=2048)
def read_message(text: str | None) -> Reading:
    """What the message is about, whether it needs an answer, and its buying intents.

    Routing reads one message several times (needs a reply? a closing? its lead score): the
    reading is cached by text. Do not change a Reading's ``buying``; ``buying_words`` copies it."""
    if not text or not text.strip():
        return Reading(OTHER, False)
    asks = "?" in text or "\uff1f" in text
    if _automatic(text):
        return Reading(AUTO_REPLY_OR_SPAM, False)
    tokens: list[Word] = words(text, _VOCABULARY)
    ws = [t.word for t in tokens]
    if not ws:
        return Reading(OTHER, asks, asks=asks)  # emoji only: the caller decides
    polite = None if asks else _polite_only(ws)
    if polite is None and not asks:
        later = _LATER_AGAIN.sub(" ", " ".join(ws)).split()
        polite = _polite_only(later) if later != ws else None
    if polite:
        return Reading(polite, False)

    joined = " ".join(ws)
    starts, offset = [], 0
    for w in ws:
        starts.append(offset)
        offset += len(w) + 1
    asks = asks or _question_like(ws)

    if _COMPLAINT.search(joined):
        return Reading(COMPLAINT, True, asks=asks)
    new_order = bool(_NEW_ORDER.search(joined))
    if _ORDER_STATUS.search(joined) and not new_order:
        return Reading(ORDER_STATUS, True, asks=asks)

    buying = _buying(tokens, ws, joined, starts)
    if ORDER_STATUS in buying:  # "resi brp"
        return Reading(ORDER_STATUS, True, asks=asks)
    berapa_only = buying.pop(_BERAPA, None) is not None
    if QUESTION in buying:
        buying.pop(QUESTION)
        if _AT_WHAT_TIME.search(joined):  # "jam brp terakhir bisa order": about the hours
            buying.pop(PURCHASE, None)
            buying.pop(SHIPPING, None)
        if not buying:
            return Reading(QUESTION, True, asks=True)
    found = {name: ", ".join(dict.fromkeys(buying[name])) for name in BUYING if name in buying}
    if found:
        order = [n for n in _LABEL_ORDER if n in found]
        if berapa_only and SHIPPING in found and order[0] == PRICE:
            order.remove(PRICE)
        return Reading(order[0], True, found, asks)
    return Reading(QUESTION if asks else OTHER, True, asks=asks)


def _question_like(ws: list[str]) -> bool:
    if _WHERE.search(" ".join(ws)):
        return True
    clauses: list[list[str]] = [[]]
    for w in ws:
        if w == BOUNDARY:
            clauses.append([])
        else:
            clauses[-1].append(w)
    for clause in clauses:
        content = [w for w in clause if w not in _FILLERS]
        if any(w in _QUESTION_WORDS for w in content):
            return True
        if len(content) > 1 and content[-1] in _QUESTION_ENDS:
            return True
    return False


def _buying(tokens: list[Word], ws: list[str], joined: str, starts: list[int]) -> dict[str, list[str]]:
    """Buying intent -> the customer's words, after context (negation, "pesan", "berapa")."""
    found: dict[str, list[tuple[int, str]]] = {}

    def add(name: str, indexes: list[int]) -> None:
        found.setdefault(name, []).append((indexes[0], " ".join(tokens[k].written for k in indexes)))

    for name, pattern in _PHRASE_RULES:
        for indexes in _spans(pattern, joined, starts):
            add(name, indexes)
    if STOCK in found and _ADA_ELSEWHERE.search(joined) and not re.search(r"\bada (tidak|kah)\b", joined):
        found[STOCK] = [(k, w) for k, w in found[STOCK] if not w.startswith("ada")]
        if not found[STOCK]:
            del found[STOCK]
    # "pesan": an order, unless a message.
    for k, w in enumerate(ws):
        if w != "pesan":
            continue
        before = ws[k - 1] if k > 0 else ""
        after = ws[k + 1] if k + 1 < len(ws) else ""
        later = set(ws[k + 1 : k + 4])
        if before not in _MESSAGE_BEFORE and after not in _MESSAGE_AFTER and not later & _MESSAGE_LATER:
            add(PURCHASE, [k])
    # "ambil": an order ("aku ambil", "ambil 2"), unless a pick-up.
    if "ambil" in ws and not _PICK_UP.search(joined):
        k = ws.index("ambil")
        add(PURCHASE, [k])
    # "order": an order, unless an order already placed ("orderan saya").
    for k, w in enumerate(ws):
        if w in ("order", "orderan") and not (k + 1 < len(ws) and ws[k + 1] in ("saya", "kemarin", "kami")):
            add(PURCHASE, [k])
    # "harga ongkir", "biaya kirim": the cost of shipping, not of the goods.
    for k, w in enumerate(ws[:-1]):
        if w in _COST and ws[k + 1] in _SHIPPING_COST and PRICE in found:
            found[PRICE] = [(i, x) for i, x in found[PRICE] if i != k]
            if not found[PRICE]:
                del found[PRICE]
    # "berapa": a price unless near words say otherwise.
    by_berapa = 0
    for k, w in enumerate(ws):
        if w == _BERAPA:
            asked = _berapa_asks(ws, k)
            add(asked, [k])
            by_berapa += asked == PRICE
    if PRICE in found and len(found[PRICE]) == by_berapa:
        found[_BERAPA] = []  # the price is only a "berapa": "ongkir brp" asks about shipping
    if _NEGATED.search(joined):
        found.pop(PURCHASE, None)
    return {name: [w for _, w in sorted(hits)] for name, hits in found.items()}


def buying_words(text: str | None) -> dict[str, str]:
    """Buying intent -> the customer's words that showed it ("price" -> "berapa, harganya")."""
    return dict(read_message(text).buying)
