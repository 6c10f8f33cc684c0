"""The labels page's entered/left chart, read from the daily roll-up the labels step keeps, shows
what the raw history says: per label and local day, the distinct contacts given it and losing
it, through replays, a second delivery, stale events, two contacts proving one person and a
label given and taken away through the API.

Real PostgreSQL, Redis and a Celery worker; WAHA's webhooks posted signed.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Date, cast, delete, func, select

from api.labels import LABEL_NAME, label_flow
from models import Label, LabelChange, LabelFlowContact, LabelFlowDay
from models.db import session_scope
from pipeline import label_flow as roll_up
from settings import settings
from testkit import samples
from testkit.waha import BUDI_CHAT, BUDI_E164, contact_by_phone, label_contact, post_waha

pytestmark = pytest.mark.usefixtures("worker")

DAYS = 30
SITI_CHAT = "6285711112222@c.us"


def raw_flow(session, days: int, today: date) -> dict[tuple[str, date], tuple[int, int]]:
    """Per live label name and local day, (entered, left) distinct contacts, counted from every
    ``label_changes`` row: what the chart showed before the roll-up."""
    first = today - timedelta(days=days - 1)
    start = datetime.combine(first, time.min, ZoneInfo(settings.timezone))
    day = cast(func.timezone(settings.timezone, LabelChange.occurred_at), Date)
    rows = session.execute(
        select(LABEL_NAME, day, LabelChange.action, func.count(func.distinct(LabelChange.contact_id)))
        .join(Label, Label.id == LabelChange.label_id)
        .where(LabelChange.occurred_at >= start, Label.deleted_at.is_(None))
        .group_by(LABEL_NAME, day, LabelChange.action)
    )
    flow: dict[tuple[str, date], tuple[int, int]] = {}
    for name, on, action, contacts in rows:
        entered, left = flow.get((name, on), (0, 0))
        flow[(name, on)] = (contacts, left) if action == "added" else (entered, contacts)
    return flow


def charted(session, days: int, today: date) -> dict[tuple[str, date], tuple[int, int]]:
    """The chart's counts (``label_flow``), the days with nothing left out."""
    _, flow = label_flow(session, days, today)
    return {
        (name, on): (d.entered, d.left)
        for name, per_day in flow.items()
        for on, d in per_day.items()
        if d.entered or d.left
    }


def assert_chart_matches_history(today: date) -> dict[tuple[str, date], tuple[int, int]]:
    with session_scope() as session:
        shown = charted(session, DAYS, today)
        assert shown == raw_flow(session, DAYS, today)
        # The incremental roll-up is the one counted afresh from the history.
        roll_up.rebuild(session)
        assert charted(session, DAYS, today) == shown
        session.rollback()
    return shown


def at_local(on: date, hour: int, minute: int = 0) -> int:
    """Milliseconds of ``on`` at hour:minute in the business time zone."""
    moment = datetime.combine(on, time(hour, minute), ZoneInfo(settings.timezone))
    return int(moment.astimezone(UTC).timestamp() * 1000)


def test_the_chart_counts_each_contact_once_per_label_day_and_action(client, admin_headers, drained):
    zone = ZoneInfo(settings.timezone)
    today = datetime.now(zone).date()
    day = today - timedelta(days=3)
    rina = {"metadata": {"staff": "Rina"}}

    post_waha(client, samples.waha_label_upsert("1", "Lead", at_ms=at_local(day, 8)))
    post_waha(client, samples.waha_label_upsert("2", "Grade A", at_ms=at_local(day, 8)))
    # 23:30 and 00:30 local time: one UTC day, two local days.
    late = samples.waha_label_chat("added", BUDI_CHAT, "1", "Lead", at_ms=at_local(day, 23, 30), **rina)
    assert post_waha(client, late) == {"accepted": 1, "duplicates": 0}
    assert post_waha(client, late) == {"accepted": 0, "duplicates": 1}  # replayed: one event
    post_waha(client, samples.waha_label_chat("deleted", BUDI_CHAT, "1", "Lead", at_ms=at_local(day, 23, 40)))
    label_contact(client, BUDI_CHAT, "1", "Lead", at_ms=at_local(day + timedelta(days=1), 0, 30))
    # Siti: given Lead twice the same day (a second delivery, another event id), and an old
    # "added" arriving after a newer "removed" (kept in history, state unchanged).
    label_contact(client, SITI_CHAT, "1", "Lead", at_ms=at_local(day, 9))
    label_contact(client, SITI_CHAT, "1", "Lead", at_ms=at_local(day, 10))
    post_waha(client, samples.waha_label_chat("deleted", SITI_CHAT, "1", "Lead", at_ms=at_local(day, 12)))
    label_contact(client, SITI_CHAT, "1", "Lead", at_ms=at_local(day, 11))
    # Both given Grade A that day in the app.
    label_contact(client, BUDI_CHAT, "2", "Grade A", at_ms=at_local(day, 14), **rina)
    label_contact(client, SITI_CHAT, "2", "Grade A", at_ms=at_local(day, 15), **rina)
    # A label deleted in the app leaves the chart.
    label_contact(client, BUDI_CHAT, "3", "Promo", at_ms=at_local(day, 16))
    post_waha(client, samples.waha_label_deleted("3", "Promo", at_ms=at_local(day, 17)))
    drained()

    shown = assert_chart_matches_history(today)
    assert shown[("Lead", day)] == (2, 2)  # Budi and Siti in, Budi out at 23:40, Siti at noon
    assert shown[("Lead", day + timedelta(days=1))] == (1, 0)  # Budi again, after local midnight
    assert shown[("Grade A", day)] == (2, 0)
    assert not [key for key in shown if key[0] == "Promo"]

    # Through the API (Budi has no WAHA chat: our own catalogue, session "api"), today: Grade B
    # given and taken away; WAHA's Grade A taken away, then a Grade A of our own given and taken
    # away. Two labels of one name: Budi left "Grade A" once.
    budi = contact_by_phone(client, admin_headers, BUDI_E164)["id"]
    path = f"/api/contacts/{budi}/labels"
    assert client.post(f"{path}/Grade B", headers=admin_headers).status_code == 201
    assert client.delete(f"{path}/Grade B", headers=admin_headers).status_code == 200
    assert client.delete(f"{path}/Grade A", headers=admin_headers).json()["changed"] is True
    assert client.post(f"{path}/Grade A", headers=admin_headers).status_code == 201
    assert client.delete(f"{path}/Grade A", headers=admin_headers).json()["changed"] is True
    shown = assert_chart_matches_history(today)
    assert shown[("Grade B", today)] == (1, 1)
    assert shown[("Grade A", today)] == (1, 1)
    assert shown[("Grade A", day)] == (2, 0)  # the earlier day as it was


def test_two_contacts_that_prove_to_be_one_person_count_once(client, admin_headers, drained):
    zone = ZoneInfo(settings.timezone)
    today = datetime.now(zone).date()
    day = today - timedelta(days=1)
    label_contact(client, BUDI_CHAT, "2", "Grade A", at_ms=at_local(day, 9))
    label_contact(client, SITI_CHAT, "2", "Grade A", at_ms=at_local(day, 10))
    label_contact(client, SITI_CHAT, "3", "Lead", at_ms=at_local(day, 11))
    drained()
    assert assert_chart_matches_history(today)[("Grade A", day)] == (2, 0)

    # WhatsApp says Budi's number changed to Siti's: the two contacts are one person.
    changed = {"type": "user_changed_number", "body": "changed", "wa_id": SITI_CHAT.split("@")[0]}
    change = samples.message(BUDI_E164[1:], "system", system=changed)
    body, headers = samples.encode(samples.envelope(messages=[change]))
    assert client.post("/webhooks/whatsapp", content=body, headers=headers).status_code == 200
    drained()
    shown = assert_chart_matches_history(today)
    assert shown[("Grade A", day)] == (1, 0)
    assert shown[("Lead", day)] == (1, 0)


def test_a_savepoint_rolled_back_takes_back_only_its_own_changes(client, admin_headers, drained):
    """The contact merge attaches inside a savepoint that can lose a race and roll back: the
    changes written around it must still be counted, those inside it not, and a released
    savepoint's changes once, at the commit."""
    zone = ZoneInfo(settings.timezone)
    today = datetime.now(zone).date()
    label_contact(client, BUDI_CHAT, "2", "Grade A", at_ms=at_local(today - timedelta(days=3), 9))
    drained()

    budi = contact_by_phone(client, admin_headers, BUDI_E164)["id"]

    def change(session, label: Label, contact_id: int, days_ago: int) -> None:
        roll_up.record(
            session,
            contact_id=contact_id,
            label=label,
            action="removed",
            occurred_at=datetime.combine(today - timedelta(days=days_ago), time(12), zone),
            gateway_session=label.session,
            account=None,
            staff="test",
            cause="test",
            applied=True,
        )

    with session_scope() as session:
        label = session.scalar(select(Label).where(Label.name == "Grade A"))
        change(session, label, budi, days_ago=2)  # around the savepoints
        with session.begin_nested() as lost:
            change(session, label, budi, days_ago=1)
            lost.rollback()
        with session.begin_nested():
            change(session, label, budi, days_ago=0)  # released, counted at the commit
    shown = assert_chart_matches_history(today)
    assert shown[("Grade A", today - timedelta(days=2))] == (0, 1)
    assert ("Grade A", today - timedelta(days=1)) not in shown
    assert shown[("Grade A", today)] == (0, 1)


def test_run_labels_rebuild_counts_a_roll_up_gone_wrong_again(client, drained, capsys):
    """After a TIMEZONE change or a bulk load the roll-up no longer matches the history: the
    command makes the chart show the history again."""
    from cli.__main__ import main

    today = datetime.now(ZoneInfo(settings.timezone)).date()
    label_contact(client, BUDI_CHAT, "2", "Grade A", at_ms=at_local(today, 9))
    drained()
    with session_scope() as session:  # as if the history had been loaded past the labels step
        session.execute(delete(LabelFlowContact))
        session.execute(delete(LabelFlowDay))
        assert ("Grade A", today) not in charted(session, DAYS, today)
    main(["labels", "rebuild"])
    assert "counted 1 label changes again: 1 roll-up rows" in capsys.readouterr().out
    assert assert_chart_matches_history(today)[("Grade A", today)] == (1, 0)
