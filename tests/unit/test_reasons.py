"""A routing reason is stored in English and shown in the reader's language: every sentence the
lead scores and routing write is matched by a pattern of web/reasons.py, and the values it
carries (the customer's words, names) come back unchanged."""

from __future__ import annotations

import pytest

from domain import intent, lead_features, lead_score
from web.i18n import translations
from web.reasons import PATTERNS, translate


def indonesian(text: str) -> str:
    return translate(text, translations("id").gettext)


def english(text: str) -> str:
    return translate(text, translations("en").gettext)


def test_a_lead_decision_reads_in_indonesian_with_the_customers_words_kept():
    score = lead_score.classify(
        lead_score.LeadSignals(
            text="kak berapa harganya? mau beli 2",
            inbound_messages=3,
            typical_response_seconds=100,
            active_labels=("Grade A",),
            open_orders=1,
            earlier_intent=("shipping",),
        )
    )
    stored = f"lead is {score.lead_class} (score {score.score}): " + "; ".join(score.reasons)
    shown = indonesian(stored)
    assert shown.startswith(f"prospek panas (skor {score.score}): menanyakan harga (")
    assert "sebelumnya di percakapan ini: menanyakan pengiriman +15" in shown
    assert "3 pesan di percakapan ini +10" in shown and "berlabel Grade A +30" in shown
    assert "harga" in shown and "ask" not in shown
    assert english(stored) == stored  # the English page shows the sentence as it was written


def test_every_sentence_the_lead_scores_write_is_translated():
    plain = lead_score.classify(
        lead_score.LeadSignals(text="halo", inbound_messages=1, typical_response_seconds=None)
    )
    written = [*plain.reasons, "chance of an order 72%"]
    names = ["intent:price", "channel:toko", "campaign:ad:1202", "label:vip", *lead_features._DESCRIBED]
    written += [lead_features.Contribution(name, 0.52).reads() for name in names]
    for sentence in written:
        assert indonesian(sentence) != sentence, sentence


@pytest.mark.parametrize(
    "kind, text",
    [
        ("image", None),
        ("sticker", None),
        ("text", ""),
        ("text", "makasih kak"),
        ("text", "👍"),
        ("text", "halo"),
    ],
)
def test_why_a_message_needs_a_reply_or_not_is_translated(kind, text):
    needs, why = intent.needs_reply(kind, text)
    stored = f"needs a reply: {why}" if needs else f"no reply needed: {why}"
    assert indonesian(stored).startswith("perlu dibalas: " if needs else "tidak perlu dibalas: ")
    assert indonesian(why) != why


def test_routing_and_assignment_sentences_keep_names_and_keys():
    assert indonesian(
        "hot lead, for follow-up: ayu is unavailable; assigned to andi, next in the 'sales' rotation"
    ) == (
        "prospek panas, untuk ditindaklanjuti: ayu tidak tersedia; "
        "diberikan ke andi, giliran berikutnya di rotasi 'sales'"
    )
    assert indonesian("automation answers: matches faq 'harga' (88% like 'berapa harganya')") == (
        "otomasi menjawab: cocok dengan faq 'harga' (88% mirip 'berapa harganya')"
    )
    assert indonesian("overridden by sri: human (VIP)") == "diubah oleh sri: seseorang (VIP)"


def test_a_sentence_no_pattern_knows_is_shown_as_stored():
    assert indonesian("something new <b>") == "something new <b>"


def test_every_pattern_matches_its_own_english():
    # A pattern whose values are filled in reads back as itself (no pattern shadows another).
    for message in PATTERNS:
        if "%(" not in message:
            assert english(message) == message


def test_numbers_in_a_reason_are_written_as_the_readers_locale_writes_them():
    def shown(text: str, language: str) -> str:
        return translate(text, translations(language).gettext, language)

    learned = lead_features.Contribution("intent:price", 0.75).reads()
    assert shown(learned, "id") == "menanyakan harga +0,75"
    assert shown(learned, "en") == "asks about price +0.75"
    assert shown("the AI agent answered (confidence 0.80)", "id").endswith("(keyakinan 0,80)")
    below = shown("confidence 0.42 is below 0.60", "id")
    assert "0,42" in below and "0,60" in below and "0.6" not in below
    assert shown("chance of an order 12.5%", "id").endswith(" 12,5%")
    # Whole numbers and the customer's own words are left alone.
    lead = shown("lead is hot (score 42): asks about price (2.5 kg)", "id")
    assert lead.startswith("prospek panas (skor 42)") and "(2.5 kg)" in lead
