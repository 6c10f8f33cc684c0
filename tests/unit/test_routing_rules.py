"""Routing rules as customers and staff meet them: which messages wait for an answer, how hot a
lead is, which FAQ answers a question, and whether the shop is open in Jakarta right now."""

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from domain import business_hours, faq_match, intent, lead_score
from domain.faq_match import FaqCandidate
from domain.lead_score import LeadSignals

# --- needs_reply / is_closing ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "ok",
        "Oke",
        "okeee",
        "OK!!!",
        "okey",
        "okay",
        "sip",
        "siap kak",
        "noted",
        "baik kak",
        "iya",
        "ya",
        "oke siap kak",
        "ok deh gan",
        "sama2 kak",
    ],
)
def test_acknowledgements_need_no_reply(text):
    assert intent.needs_reply("text", text) == (False, "an acknowledgement")


@pytest.mark.parametrize(
    "text",
    [
        "terima kasih",
        "Terimakasih",
        "makasih",
        "makasi",
        "makasiiih",
        "trims",
        "thx",
        "thanks",
        "thank you very much",
        "thank you so much bro",
        "tq",
        "mksh",
        "ok makasih kak 🙏",
        "terima kasih banyak ya",
        "Terima kasih kak 🙏",
        "makasih infonya kak",
        "trimakasih sis",
        "terimaksih kak",  # one letter left out of a long word
    ],
)
def test_thanks_need_no_reply_and_close_the_conversation(text):
    assert intent.needs_reply("text", text) == (False, "thanks")
    assert intent.is_closing(text)


@pytest.mark.parametrize("text", ["dadah", "bye", "Bye bye kak", "sampai jumpa", "good bye"])
def test_goodbyes_need_no_reply_and_close_the_conversation(text):
    assert intent.needs_reply("text", text) == (False, "a goodbye")
    assert intent.is_closing(text)


@pytest.mark.parametrize("text", ["👍", "🙏🙏", "😊❤️", "👍🙏😊❤️", "...", "  "])
def test_messages_of_only_emoji_need_no_reply(text):
    needed, _ = intent.needs_reply("text", text)
    assert not needed


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("ok, berapa ongkirnya?", "a question"),
        ("makasih?", "a question"),
        ("??", "a question"),  # nudging: the customer is waiting for us
        ("berapa harganya", "a question"),
        ("Kak, apakah masih ready", "a question"),
        ("makasih, tapi barangnya kapan sampai", "a question about an order"),
        ("halo kak", "a message"),
        ("kak", "a message"),
        ("ok info dong", "a message"),
        ("udah transfer kak", "a message"),
        ("masih", "a message"),  # "still", not a misspelt "makasih"
        ("oke, tolong kirim hari ini", "a message"),
    ],
)
def test_questions_and_requests_need_a_reply(text, reason):
    assert intent.needs_reply("text", text) == (True, reason)


@pytest.mark.parametrize(
    ("message_type", "text", "expected"),
    [
        ("reaction", "👍", (False, "a reaction")),
        ("sticker", None, (False, "a sticker")),
        ("image", None, (True, "an image")),
        ("image", "makasih", (True, "an image")),  # a caption on a photo (a receipt?) is read
        ("document", "invoice.pdf", (True, "a document")),
        ("audio", None, (True, "an audio message")),
        ("video", None, (True, "a video")),
        ("location", "-6.2,106.8", (True, "a location")),
        ("contacts", "Budi", (True, "a contact card")),
        ("button", "Ya", (True, "a button reply")),
        ("interactive", "Kirim besok", (True, "a button reply")),
        ("revoke", None, (False, "a deleted message")),
        ("system", "Customer changed their number", (False, "a system notice")),
        ("unsupported", None, (True, "an unsupported message")),
        ("something_new", "?", (True, "an unsupported message")),
    ],
)
def test_message_types_decide_before_the_words(message_type, text, expected):
    assert intent.needs_reply(message_type, text) == expected


@pytest.mark.parametrize(
    "text", ["ok", "oke siap", "👍", "iya kak", "makasih, tapi kapan dikirim?", "halo", "", None]
)
def test_an_ok_or_a_question_does_not_close_the_conversation(text):
    assert not intent.is_closing(text)


@pytest.mark.parametrize(
    "text",
    [
        "Ada yang bisa kami bantu?",
        "Pesanan sudah kami kirim. Apakah sudah diterima",
        "Kak, mau dikirim hari ini",
        "Bagaimana pengalaman belanja kakak",
        "Bisakah kakak konfirmasi alamatnya",
        "Terima kasih, ada yang bisa kami bantu lagi",
        "Sudah diterima belum",
        "Boleh minta alamat lengkapnya",
        "Kapan barangnya mau diambil",
        "Berapa ukuran yang kakak cari",
        "Halo Budi, gimana kabarnya",
        "Would you like us to ship it today",
    ],
)
def test_our_outbound_questions_are_recognised(text):
    assert intent.asks_question(text)


@pytest.mark.parametrize(
    "text",
    [
        "Pesanan kakak sudah kami kirim.",
        "Terima kasih sudah berbelanja!",
        "Silakan transfer ke rekening BCA ya",
        "Resi: JNE123456",
        "",
        None,
    ],
)
def test_our_outbound_statements_are_not_questions(text):
    assert not intent.asks_question(text)


@pytest.mark.parametrize(
    ("text", "rating"),
    [
        ("5", 5),
        (" 4 ", 4),
        ("4/5", 4),
        ("4 / 5", 4),
        ("4 dari 5", 4),
        ("nilai 3", 3),
        ("Nilai: 5!", 5),
        ("1", 1),
        ("⭐⭐⭐⭐", 4),
        ("⭐️⭐️⭐️⭐️⭐️⭐️⭐️", 5),  # stars counted, at most five
        ("5 bintang", 5),
        ("5⭐", 5),
        ("saya kasih 5 bintang kak", 5),
        ("sangat puas", 5),
        ("puaas banget kak", 5),
        ("puas", 4),
        ("biasa", 3),
        ("biasa aja", 3),
        ("cukup", 3),
        ("kurang puas", 2),
        ("kurang", 2),
        ("tidak puas", 1),
        ("gak puas", 1),
        ("kecewa", 1),
        ("very satisfied", 5),
        ("Satisfied", 4),
        ("neutral", 3),
        ("unsatisfied", 1),
        ("bad", 1),
    ],
)
def test_survey_answers_become_ratings(text, rating):
    assert intent.survey_rating(text) == rating


@pytest.mark.parametrize(
    "text",
    [
        "ok",
        "0",
        "6",
        "10",
        "5/10",
        "pesanan 12345 belum sampai",
        "saya beli 2 kemarin",
        "⭐⭐⭐ tapi pengirimannya lama",
        "terima kasih",
        "",
        None,
    ],
)
def test_other_answers_are_not_ratings(text):
    assert intent.survey_rating(text) is None


# --- lead_score ------------------------------------------------------------------------------


def new_number(text: str | None) -> LeadSignals:
    return LeadSignals(text=text, inbound_messages=1, typical_response_seconds=None)


def test_a_price_question_from_a_new_number_is_hot_and_says_why():
    lead = lead_score.classify(new_number("Halo kak, berapa harganya?"))
    assert (lead.lead_class, lead.score, lead.intents) == (lead_score.HOT, 40, ("price",))
    assert lead.reasons == ("asks about price (berapa, harganya) +40",)


def test_a_bare_hello_from_a_new_number_is_cold():
    lead = lead_score.classify(new_number("Halo"))
    assert (lead.lead_class, lead.score, lead.intents) == (lead_score.COLD, 0, ())
    assert lead.reasons == ("no buying signal yet",)


def test_asking_for_info_is_warm_not_hot():
    lead = lead_score.classify(new_number("info dong kak"))
    assert (lead.lead_class, lead.score, lead.intents) == (lead_score.WARM, 15, ("info",))


@pytest.mark.parametrize(
    ("text", "intents"),
    [
        ("hargaa?", ("price",)),
        ("harganya kak", ("price",)),
        ("hrg brp", ("price",)),
        ("How much is this?", ("price",)),
        ("ada promo?", ("price",)),
        ("mau beli 2", ("purchase",)),
        ("saya pesen 1 ya", ("purchase",)),
        ("checkout sekarang", ("purchase",)),
        ("sudah tf ya kak", ("payment",)),
        ("no rekeningnya berapa", ("payment",)),  # the number of an account, not a price
        ("bisa COD?", ("payment",)),
        ("pembayarn lewat mana", ("payment",)),  # a letter left out
        ("tranfer ke mana", ("payment",)),  # a letter left out of a long word
        ("pake j&t bisa?", ("shipping",)),
        ("ongkirnya ke bandung", ("shipping",)),
        ("ready stok ukuran L?", ("stock",)),
        ("warna merah ada?", ("stock",)),
        ("mau order, ongkir ke bandung brp?", ("price", "purchase", "shipping")),
        ("selamat pagi", ()),
        ("pagi kak", ()),
        ("apa kabar", ()),
        ("barangnya bagus", ()),
        ("stick", ()),  # one letter from "stock" is a different short word
        ("saya hargai bantuannya", ()),
        ("", ()),
        (None, ()),
    ],
)
def test_buying_intents_tolerate_spelling_but_stay_precise(text, intents):
    assert lead_score.buying_intents(text) == intents


def test_an_intent_repeated_in_one_message_counts_once():
    lead = lead_score.classify(new_number("harga? harganya berapa? price?"))
    assert lead.score == 40


def test_intents_from_earlier_in_the_conversation_count_half_and_once():
    earlier = LeadSignals("ok", 2, None, earlier_intent=("price", "shipping", "not-an-intent"))
    lead = lead_score.classify(earlier)
    assert (lead.lead_class, lead.score) == (lead_score.WARM, 35)
    assert lead.reasons == (
        "earlier in the conversation: asks about price +20",
        "earlier in the conversation: asks about shipping +15",
    )
    again = lead_score.classify(LeadSignals("harganya?", 2, None, earlier_intent=("price",)))
    assert again.score == 40


@pytest.mark.parametrize(("inbound", "points"), [(1, 0), (2, 0), (3, 10), (5, 10), (6, 15), (20, 15)])
def test_engagement_adds_points_once(inbound, points):
    assert lead_score.classify(LeadSignals(None, inbound, None)).score == points


@pytest.mark.parametrize(
    ("seconds", "points"), [(None, 0), (30, 15), (299, 15), (300, 5), (3599, 5), (7200, 0)]
)
def test_quick_answerers_score_higher(seconds, points):
    assert lead_score.classify(LeadSignals(None, 1, seconds)).score == points


@pytest.mark.parametrize(
    ("labels", "points"),
    [((), 0), (("Grade A",), 30), (("GRADE A", "hot"), 30), (("vip",), 0), ((" Siap Beli ",), 30)],
)
def test_hot_labels_count_once_whatever_their_case(labels, points):
    assert lead_score.classify(LeadSignals(None, 1, None, active_labels=labels)).score == points


def test_hot_labels_can_be_chosen_by_the_business():
    signals = LeadSignals(None, 1, None, active_labels=("VIP", "Grade A"))
    lead = lead_score.classify(signals, hot_labels=frozenset({"vip"}))
    assert (lead.score, lead.reasons) == (30, ("labelled VIP +30",))


def test_known_customers_are_warm_or_hot_without_saying_anything():
    returning = lead_score.classify(LeadSignals("Halo", 1, None, past_orders=3))
    assert (returning.lead_class, returning.reasons) == (lead_score.WARM, ("returning customer +15",))
    waiting = lead_score.classify(LeadSignals("Halo", 1, None, open_orders=1, past_orders=1))
    assert (waiting.lead_class, waiting.score) == (lead_score.HOT, 40)
    assert waiting.reasons == ("has an open order +25", "returning customer +15")


def test_a_little_engagement_alone_stays_cold_but_is_listed():
    lead = lead_score.classify(LeadSignals("hmm", 4, None))
    assert (lead.lead_class, lead.score, lead.reasons) == (
        lead_score.COLD,
        10,
        ("4 messages in this conversation +10",),
    )


def test_every_contribution_is_listed_in_a_stable_order():
    signals = LeadSignals(
        text="sudah transfer, tolong kirim pakai jne",
        inbound_messages=7,
        typical_response_seconds=120,
        active_labels=("Grade A",),
        open_orders=1,
        past_orders=2,
        earlier_intent=("stock", "price"),
    )
    lead = lead_score.classify(signals)
    assert lead.reasons == (
        "talks about payment (transfer) +50",
        "asks about shipping (kirim, jne) +30",
        "earlier in the conversation: asks about price +20",
        "earlier in the conversation: asks about stock +12",
        "7 messages in this conversation +15",
        "usually answers within 5 minutes +15",
        "labelled Grade A +30",
        "has an open order +25",
        "returning customer +15",
    )
    assert (lead.lead_class, lead.score, lead.intents) == (lead_score.HOT, 212, ("payment", "shipping"))


# --- faq_match -------------------------------------------------------------------------------

FAQS = (
    FaqCandidate("hours", ("jam buka toko", "toko buka jam berapa", "what are your opening hours")),
    FaqCandidate("address", ("alamat toko dimana", "lokasi toko", "where is your store")),
    FaqCandidate("cod", ("bisa bayar cod", "bisa bayar di tempat")),
    FaqCandidate("sunday", ("toko buka hari minggu",)),
)


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("Kak, jam bukaa tokonyaaa?? 🙏", "jam bukaa toko"),
        ("sampaiii", "sampai"),
        ("Apakah bisa COD kak?", "apa bisa cod"),
        ("mau tanya dong min, di mana alamatnya", "dimana alamat"),
        ("gimana cara pesannya", "bagaimana cara pesan"),
        ("maaf, kaos ukuran XL ada?", "maaf kaos ukuran xl ada"),  # doubles and "ka…" words stay
        ("Selamat pagi, minggu buka?", "minggu buka"),
        ("ok", "ok"),
        ("🙏", ""),
    ],
)
def test_normalise_keeps_only_the_words_that_carry_the_question(text, normalised):
    assert faq_match.normalise(text) == normalised


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("jam bukaa tokonya?", "hours"),
        ("jm buka toko", "hours"),
        ("buka jam berapa toko", "hours"),
        ("kak mau tanya, toko buka jam berapa ya?", "hours"),
        ("JAM BUKA TOKO", "hours"),
        ("alamatnya di mana kak?", "address"),
        ("dimana alamat tokonya", "address"),
        ("Where is your store?", "address"),
        ("apakah bisa bayar COD?", "cod"),
        ("hari minggu toko buka?", "sunday"),
    ],
)
def test_misspelt_and_reordered_questions_find_their_faq(text, key):
    match = faq_match.best_match(text, FAQS, threshold=82)
    assert match is not None and match.key == key
    assert 82 <= match.score <= 100


@pytest.mark.parametrize(
    "text",
    [
        "berapa ongkir ke bandung",
        "harga kaos polos berapa",
        "toko buka hari senin",  # one word apart from the Sunday entry, but a different day
        "bisa bayar transfer",
        "pesanan saya kapan sampai",
        "alamat pengiriman saya ganti ke jalan mawar no 5",
        "toko",
        "jam",
        "ok",
        "terima kasih",
        "makasih kak 🙏",
        "👍",
        "??",
        "",
        None,
    ],
)
def test_other_topics_and_bare_words_match_no_faq(text):
    assert faq_match.best_match(text, FAQS, threshold=82) is None


def test_a_single_word_that_is_in_a_faq_question_does_not_match_it():
    """token_set_ratio would score "toko" 100 against "jam buka toko"; a subset is no answer."""
    candidates = [FaqCandidate("hours", ("jam buka toko",))]
    assert faq_match.best_match("toko", candidates, threshold=0) is None
    assert faq_match.best_match("toko dong", candidates, threshold=0) is None


def test_the_match_names_the_variant_and_its_score():
    match = faq_match.best_match("Toko buka jam berapa?", FAQS, threshold=82)
    assert match == faq_match.FaqMatch("hours", 100.0, "toko buka jam berapa")


def test_the_threshold_decides_how_much_misspelling_is_forgiven():
    candidates = [FaqCandidate("hours", ("jam buka toko",))]
    assert faq_match.best_match("jm bukaa toko", candidates, threshold=99) is None
    assert faq_match.best_match("jm bukaa toko", candidates, threshold=82) is not None


def test_the_best_scoring_candidate_wins_and_ties_go_to_the_first():
    branch = FaqCandidate("branch", ("jam buka toko cabang bandung",))
    main = FaqCandidate("main", ("jam buka toko",))
    same = FaqCandidate("same", ("jam buka toko",))
    assert faq_match.best_match("jam buka toko", [branch, main, same], threshold=50).key == "main"
    assert faq_match.best_match("jam buka toko", [same, main], threshold=50).key == "same"


def test_candidates_may_be_any_iterable_and_may_be_empty():
    assert faq_match.best_match("jam buka toko", iter(FAQS), threshold=82).key == "hours"
    assert faq_match.best_match("jam buka toko", [], threshold=82) is None


# --- business_hours --------------------------------------------------------------------------

JAKARTA = "Asia/Jakarta"  # UTC+7 all year
DEFAULT = "mon-fri 08:00-17:00, sat 08:00-13:00"


def wib(day: int, hour: int, minute: int = 0) -> datetime:
    """A June 2024 time in Jakarta, as the UTC instant the workers see (17 June is a Monday)."""
    local = datetime(2024, 6, day, hour, minute, tzinfo=ZoneInfo(JAKARTA))
    return local.astimezone(UTC)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (wib(17, 8), True),  # Monday, opening time
        (wib(17, 7, 59), False),
        (wib(17, 12, 30), True),
        (wib(17, 16, 59), True),
        (wib(17, 17), False),  # closing time is closed
        (wib(21, 10), True),  # Friday
        (wib(22, 10), True),  # Saturday morning
        (wib(22, 14), False),  # Saturday afternoon
        (wib(22, 13), False),
        (wib(23, 10), False),  # Sunday: not mentioned, closed
    ],
)
def test_default_hours_in_jakarta(at, expected):
    assert business_hours.is_open(business_hours.parse(DEFAULT), at, JAKARTA) is expected


def test_the_clock_is_read_in_the_business_timezone_not_utc():
    hours = business_hours.parse(DEFAULT)
    monday_0130_utc = datetime(2024, 6, 17, 1, 30, tzinfo=UTC)  # 08:30 in Jakarta
    assert business_hours.is_open(hours, monday_0130_utc, JAKARTA)
    assert not business_hours.is_open(hours, monday_0130_utc, "UTC")
    friday_2330_utc = datetime(2024, 6, 21, 23, 30, tzinfo=UTC)  # already Saturday 06:30 in Jakarta
    assert not business_hours.is_open(hours, friday_2330_utc, JAKARTA)
    assert business_hours.is_open(hours, datetime(2024, 6, 17, 0, 30, tzinfo=UTC), "Asia/Makassar")


@pytest.mark.parametrize("spec", ["", "  ", "always", "ALWAYS", "24/7", "daily 00:00-24:00"])
def test_always_open(spec):
    hours = business_hours.parse(spec)
    for at in (wib(23, 0), wib(23, 23, 59), wib(19, 3, 15)):
        assert business_hours.is_open(hours, at, JAKARTA)


def test_several_intervals_a_day_leave_a_lunch_break():
    for spec in ("mon-fri 08:00-12:00, mon-fri 13:00-17:00", "mon-fri 08:00-12:00 13:00-17:00"):
        hours = business_hours.parse(spec)
        assert business_hours.is_open(hours, wib(18, 11, 59), JAKARTA)
        assert not business_hours.is_open(hours, wib(18, 12, 30), JAKARTA)
        assert business_hours.is_open(hours, wib(18, 13), JAKARTA)
        assert hours.days[1] == ((time(8), time(12)), (time(13), time(17)))


def test_day_lists_and_weekend_ranges():
    hours = business_hours.parse("sat,sun 10:00-14:00")
    assert business_hours.is_open(hours, wib(23, 11), JAKARTA)  # Sunday
    assert business_hours.is_open(hours, wib(22, 11), JAKARTA)  # Saturday
    assert not business_hours.is_open(hours, wib(17, 11), JAKARTA)  # Monday
    wrapping = business_hours.parse("fri-mon 10:00-11:00")
    assert [bool(day) for day in wrapping.days] == [True, False, False, False, True, True, True]


@pytest.mark.parametrize(
    "spec",
    [
        "sen-jum 08.00-17.00, sab 08.00-13.00",
        "Senin-Jumat 08:00-17:00; Sabtu 08:00-13:00",
        "mon - fri 8:00 - 17:00, sat 8-13",
        "monday-friday 08:00-17:00 saturday 08:00-13:00 sun closed",
        "weekdays 08:00-17:00, sat 08:00-13:00",
    ],
)
def test_indonesian_and_loose_spellings_mean_the_same_hours(spec):
    assert business_hours.parse(spec) == business_hours.parse(DEFAULT)


def test_a_range_past_midnight_opens_the_next_morning():
    hours = business_hours.parse("fri 20:00-02:00")
    assert business_hours.is_open(hours, wib(21, 23), JAKARTA)
    assert business_hours.is_open(hours, wib(22, 1, 30), JAKARTA)  # Saturday 01:30
    assert not business_hours.is_open(hours, wib(22, 2), JAKARTA)
    assert not business_hours.is_open(hours, wib(20, 1), JAKARTA)  # Thursday night is not Friday's


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("mon-fry 08:00-17:00", "'mon-fry'"),
        ("08:00-17:00", "'08:00-17:00' comes before any day"),
        ("mon 25:00-26:00", "25:00"),
        ("mon 08:00-08:60", "08:60"),
        ("mon 24:00-08:00", "24:00"),
        ("mon 08:00-08:00", "empty range"),
        ("mon-fri", "'mon-fri' has no hours"),
        ("mon 08:00-17:00, sat", "'sat' has no hours"),
        ("mon 8am-5pm", "'8am-5pm'"),
    ],
)
def test_unreadable_hours_name_the_bad_part(spec, named):
    with pytest.raises(ValueError, match=named):
        business_hours.parse(spec)


def test_a_time_without_a_zone_is_refused():
    with pytest.raises(ValueError, match="time zone"):
        business_hours.is_open(business_hours.parse(DEFAULT), datetime(2024, 6, 17, 9), JAKARTA)
