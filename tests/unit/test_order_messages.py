"""The messages file and the follow-up's due time: what the business edits, checked up front."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from domain import order_messages
from domain.followup_time import followup_due
from domain.order_messages import TemplateError, format_total
from settings import settings
from testkit.samples import with_trigger


def test_the_shipped_file_loads_and_fills_every_trigger():
    templates = order_messages.load(settings.order_messages_file)
    assert set(templates) == set(order_messages.TITLES)
    text, template = templates["order_delivery"].render(
        {"name": "Budi", "business": "Toko", "order_id": "SO-1", "courier": "JNE", "tracking_number": "R1"}
    )
    assert "SO-1" in text and "JNE" in text and "R1" in text
    assert template == {
        "name": "order_shipped",
        "language": "id",
        "parameters": ["Budi", "SO-1", "JNE", "R1"],
    }


def test_the_shipped_message_carries_the_tracker_link_and_a_template_may_too(tmp_path):
    link = "https://toko.example/t/7-abc"
    text, _ = order_messages.load(settings.order_messages_file)["order_delivery"].render(
        {"order_id": "SO-1", "tracking_number": "R1", "tracker_url": link}
    )
    assert link in text
    table = (
        '[order_paid]\ntext = "Lacak {tracker_url}"\n'
        'template = { name = "t", language = "id", parameters = ["order_id", "tracker_url"] }\n'
    )
    paid = order_messages.load(with_trigger(tmp_path, "order_paid", table))["order_paid"]
    assert paid.render({"order_id": "SO-1", "tracker_url": link}) == (
        f"Lacak {link}",
        {"name": "t", "language": "id", "parameters": ["SO-1", link]},
    )
    # No link (no SECRET_KEY or PUBLIC_URL): a dash, never a broken brace or "None".
    assert paid.render({"order_id": "SO-1"})[0] == "Lacak -"


def test_the_welcome_cannot_use_the_tracker_link(tmp_path):
    table = '[contact_created]\ntext = "Halo {tracker_url}"\n'
    with pytest.raises(TemplateError, match=r"\[contact_created\].*\{tracker_url\}"):
        order_messages.load(with_trigger(tmp_path, "contact_created", table))


def test_a_placeholder_the_trigger_cannot_fill_is_refused_at_load_time(tmp_path):
    path = with_trigger(tmp_path, "order_created", '[order_created]\ntext = "Resi: {tracking_number}"\n')
    with pytest.raises(TemplateError, match=r"\[order_created\].*\{tracking_number\}"):
        order_messages.load(path)


def test_a_misspelt_placeholder_is_refused(tmp_path):
    path = with_trigger(tmp_path, "order_paid", '[order_paid]\ntext = "Halo {nama}"\n')
    with pytest.raises(TemplateError, match=r"\{nama\}"):
        order_messages.load(path)


def test_a_template_parameter_must_be_a_placeholder(tmp_path):
    table = (
        '[order_paid]\ntext = "Halo {name}"\n'
        'template = { name = "t", language = "id", parameters = ["resi"] }\n'
    )
    with pytest.raises(TemplateError, match="'resi'"):
        order_messages.load(with_trigger(tmp_path, "order_paid", table))


def test_a_missing_trigger_and_a_broken_brace_are_refused(tmp_path):
    with pytest.raises(TemplateError, match=r"\[order_received\].*'text' is required"):
        order_messages.load(with_trigger(tmp_path, "order_received", ""))
    with pytest.raises(TemplateError, match="malformed"):
        order_messages.load(with_trigger(tmp_path, "order_paid", '[order_paid]\ntext = "Halo {name"\n'))


def test_a_trigger_without_template_renders_text_only(tmp_path):
    templates = order_messages.load(
        with_trigger(tmp_path, "order_paid", '[order_paid]\ntext = "Lunas {order_id}"\n')
    )
    assert templates["order_paid"].render({"order_id": "SO-9"}) == ("Lunas SO-9", None)


def test_missing_values_read_naturally():
    templates = order_messages.load(settings.order_messages_file)
    text, template = templates["contact_created"].render({"business": "Toko"})
    assert text.startswith("Halo Kak,")
    assert template["parameters"] == ["Kak", "Toko"]


def test_amounts_are_written_the_indonesian_way():
    assert format_total(Decimal("150000"), "IDR") == "Rp150.000"
    assert format_total(Decimal("1250000.00"), None) == "Rp1.250.000"
    assert format_total(Decimal("12.5"), "USD") == "USD 12.50"


def test_followup_is_due_at_the_first_cron_time_of_the_delivery_date_in_local_time():
    due = followup_due(date(2026, 11, 26), "0 10 * * *", "Asia/Jakarta")
    assert due.isoformat() == "2026-11-26T03:00:00+00:00"  # 10:00 in Jakarta (UTC+7)
    assert (
        followup_due(date(2026, 11, 26), "* * * * *", "Asia/Jakarta").isoformat()
        == "2026-11-25T17:00:00+00:00"
    )
    # A cron with no time on that date: the first time after the date begins.
    assert (
        followup_due(date(2026, 11, 26), "0 9 * * 1", "Asia/Jakarta").isoformat()
        == "2026-11-30T02:00:00+00:00"
    )
