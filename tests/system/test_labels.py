"""Label tracking end to end: WAHA webhook -> inbox -> real Celery worker -> PostgreSQL -> the API.

What a team member would see in the API after staff label chats in the WhatsApp Business app,
in any order, replayed, from group chats, and renamed.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from models import Contact, InboxEvent
from models.db import session_scope
from pipeline import labels
from pipeline.context import record_outbound_message
from producers import waha
from testkit import samples
from testkit.waha import (
    BUDI_CHAT,
    BUDI_E164,
    T0,
    contact_by_phone,
    contacts_with,
    label_contact,
    post_waha,
)

pytestmark = pytest.mark.usefixtures("worker")


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_label_added_removed_and_added_again(client, admin_headers, drained):
    rina = {"metadata": {"staff": "Rina"}}
    post_waha(client, samples.waha_label_upsert("1", "Lead", at_ms=T0, **rina))
    label_contact(client, BUDI_CHAT, "1", "Lead", at_ms=T0 + 1000, **rina)
    drained()
    budi = contact_by_phone(client, admin_headers, "0812-1234-5678")
    assert budi["phone"] == BUDI_E164 and budi["labels"] == ["Lead"]
    assert [c["id"] for c in contacts_with(client, admin_headers, "Lead")] == [budi["id"]]
    assert [c["id"] for c in contacts_with(client, admin_headers, "  lead ")] == [budi["id"]]

    post_waha(client, samples.waha_label_chat("deleted", BUDI_CHAT, "1", "Lead", at_ms=T0 + 2000))
    drained()
    assert contact_by_phone(client, admin_headers, BUDI_E164)["labels"] == []
    assert contacts_with(client, admin_headers, "Lead") == []

    label_contact(client, BUDI_CHAT, "1", "Lead", at_ms=T0 + 3000, **rina)
    drained()
    budi = contact_by_phone(client, admin_headers, BUDI_E164)
    assert budi["labels"] == ["Lead"]
    # Who, to whom, when, and what: every change, oldest first.
    history = [
        (h["action"], h["label"], moment(h["at"]), h["staff"], h["session"]) for h in budi["label_history"]
    ]
    assert history == [
        ("added", "Lead", moment(iso(T0 + 1000)), "Rina", "default"),
        ("removed", "Lead", moment(iso(T0 + 2000)), "Toko", "default"),  # no staff given: the account
        ("added", "Lead", moment(iso(T0 + 3000)), "Rina", "default"),
    ]
    assert {h["account"] for h in budi["label_history"]} == {"6281100000000@c.us"}


def test_labelled_chat_and_order_contact_are_one_person(client, admin_headers, drained, cloud_api):
    body, headers = samples.encode(samples.order_event("contact.created", phone="0812-1234-5678"))
    assert client.post("/webhooks/orders", content=body, headers=headers).status_code == 202
    drained()
    label_contact(client, BUDI_CHAT, "7", "Grade A")
    drained()
    [contact] = contacts_with(client, admin_headers, "Grade A")
    assert contact["name"] == "Budi Santoso"  # the order system's contact, found by the chat's number
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Contact)) == 1


def test_two_labelled_contacts_that_prove_to_be_one_person_keep_the_newest_label_state(
    client, admin_headers, drained
):
    other_chat = "6285711112222@c.us"
    label_contact(client, BUDI_CHAT, "2", "Grade A", at_ms=T0)
    label_contact(client, other_chat, "2", "Grade A", at_ms=T0 + 1000)
    post_waha(client, samples.waha_label_chat("deleted", other_chat, "2", "Grade A", at_ms=T0 + 2000))
    label_contact(client, other_chat, "3", "Lead", at_ms=T0 + 3000)
    drained()
    # WhatsApp says Budi's number changed to the other one: the two contacts are one person.
    # (An order-system contact id alone never merges two valid phones: tests/system/test_orders.py.)
    changed = {"type": "user_changed_number", "body": "changed", "wa_id": "6285711112222"}
    change = samples.message(BUDI_E164[1:], "system", system=changed)
    body, headers = samples.encode(samples.envelope(messages=[change]))
    assert client.post("/webhooks/whatsapp", content=body, headers=headers).status_code == 200
    drained()

    with session_scope() as session:
        assert session.scalar(select(func.count()).where(Contact.merged_into_id.is_(None))) == 1
    budi = contact_by_phone(client, admin_headers, BUDI_E164)
    assert budi["labels"] == ["Lead"]  # "Grade A" was removed after it was given to the other number
    assert len(budi["label_history"]) == 4  # nothing lost


def test_group_broadcast_status_and_newsletter_chats_are_ignored_and_counted(client, admin_headers, drained):
    not_people = [
        "120363043968066561@g.us",
        "status@broadcast",
        "1749416383@broadcast",
        "120363025246125486@newsletter",
    ]
    for chat in not_people:
        label_contact(client, chat, "1", "Lead")
    post_waha(client, samples.waha_message("120363043968066561@g.us", "halo grup"))
    drained()
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Contact)) == 0
        states = set(session.scalars(select(InboxEvent.state)))
    assert states == {"processed"}  # ignored, not failed
    assert contacts_with(client, admin_headers, "Lead") == []

    # The same rule in this process shows up in the counter (the worker's own is per process).
    def ignored(kind: str) -> float:
        value = REGISTRY.get_sample_value(
            "wacrm_waha_chats_ignored_total", {"event": "label.chat.added", "chat_kind": kind}
        )
        return value or 0.0

    before = ignored("group")
    event = waha.validate(samples.waha_label_chat("added", "120363043968066561@g.us", "1", "Lead"))
    with session_scope() as session:
        labels.record_chat_added(session, event.payload)
    assert ignored("group") == before + 1


def test_a_renamed_label_keeps_its_contacts_and_history(client, admin_headers, drained):
    post_waha(client, samples.waha_label_upsert("4", "Lead", at_ms=T0))
    label_contact(client, BUDI_CHAT, "4", "Lead", at_ms=T0 + 1000)
    drained()
    post_waha(client, samples.waha_label_upsert("4", "Hot lead", at_ms=T0 + 5000))
    drained()
    post_waha(client, samples.waha_label_upsert("4", "Old name", at_ms=T0 + 2000))  # late, older
    drained()

    assert contacts_with(client, admin_headers, "Lead") == []
    [budi] = contacts_with(client, admin_headers, "Hot lead")
    assert budi["labels"] == ["Hot lead"]
    [change] = contact_by_phone(client, admin_headers, BUDI_E164)["label_history"]
    assert (change["label"], change["label_name_then"], change["action"]) == ("Hot lead", "Lead", "added")
    listed = client.get("/api/labels", headers=admin_headers).json()["items"]
    assert [(item["name"], item["contacts"]) for item in listed] == [("Hot lead", 1)]


def test_an_old_added_after_a_newer_removed_does_not_bring_the_label_back(client, admin_headers, drained):
    post_waha(client, samples.waha_label_chat("deleted", BUDI_CHAT, "2", "Grade A", at_ms=T0 + 5000))
    drained()
    label_contact(client, BUDI_CHAT, "2", "Grade A", at_ms=T0 + 1000)  # happened first, arrived last
    drained()
    budi = contact_by_phone(client, admin_headers, BUDI_E164)
    assert budi["labels"] == []
    assert contacts_with(client, admin_headers, "Grade A") == []
    assert [(h["action"], h["applied"]) for h in budi["label_history"]] == [
        ("added", False),
        ("removed", True),
    ]

    label_contact(client, BUDI_CHAT, "2", "Grade A", at_ms=T0 + 9000)  # a newer add does
    drained()
    assert contact_by_phone(client, admin_headers, BUDI_E164)["labels"] == ["Grade A"]


def test_replayed_events_are_processed_once(client, admin_headers, drained):
    event = samples.waha_label_chat("added", BUDI_CHAT, "1", "Lead", at_ms=T0)
    assert post_waha(client, event) == {"accepted": 1, "duplicates": 0}
    assert post_waha(client, event) == {"accepted": 0, "duplicates": 1}
    # WAHA 2024 sent no id: the same body is still recognised as a replay.
    legacy = samples.waha_label_chat("deleted", BUDI_CHAT, "1", "Lead", legacy=True)
    assert post_waha(client, legacy) == {"accepted": 1, "duplicates": 0}
    assert post_waha(client, legacy) == {"accepted": 0, "duplicates": 1}
    drained()
    history = contact_by_phone(client, admin_headers, BUDI_E164)["label_history"]
    assert [h["action"] for h in history] == ["added", "removed"]


def test_a_hidden_lid_chat_is_a_contact_of_its_own_not_a_phone(client, admin_headers, drained):
    label_contact(client, "123456789012345@lid", "1", "Lead")
    drained()
    [contact] = contacts_with(client, admin_headers, "Lead")
    assert contact["phone"] is None
    detail = client.get(f"/api/contacts/{contact['id']}", headers=admin_headers).json()
    assert detail["identities"] == [{"kind": "lid", "value": "123456789012345"}]


def test_a_deleted_label_is_gone_from_everyone(client, admin_headers, drained):
    label_contact(client, BUDI_CHAT, "3", "Promo", at_ms=T0)
    drained()
    post_waha(client, samples.waha_label_deleted("3", "Promo", at_ms=T0 + 1000))
    drained()
    budi = contact_by_phone(client, admin_headers, BUDI_E164)
    assert budi["labels"] == []
    assert [(h["action"], h["cause"]) for h in budi["label_history"]] == [
        ("added", "label.chat.added"),
        ("removed", "label.deleted"),
    ]
    assert client.get("/api/labels", headers=admin_headers).json()["items"] == []


def test_label_list_counts_contacts_per_staff_member(client, admin_headers, drained):
    for i, staff in enumerate(["Rina", "Rina", "Dewi"]):
        label_contact(client, f"62812555000{i}@c.us", "1", "Lead", metadata={"staff": staff})
    label_contact(client, "628125550009@c.us", "2", "Grade A", metadata={"staff": "Dewi"})
    drained()
    answer = client.get("/api/labels", headers=admin_headers).json()
    assert answer["target_label"] == "Grade A"
    by_name = {item["name"]: item for item in answer["items"]}
    assert by_name["Lead"]["contacts"] == 3
    assert by_name["Lead"]["by_staff"] == [{"staff": "Rina", "contacts": 2}, {"staff": "Dewi", "contacts": 1}]
    assert by_name["Grade A"]["by_staff"] == [{"staff": "Dewi", "contacts": 1}]


def test_segment_exports_as_csv(client, make_client, admin_headers, drained):
    label_contact(client, BUDI_CHAT, "2", "Grade A", at_ms=T0, metadata={"staff": "Rina"})
    label_contact(client, "6285711112222@c.us", "2", "Grade A", at_ms=T0)
    label_contact(client, "6285711113333@c.us", "1", "Lead", at_ms=T0)
    drained()
    answer = client.get("/api/contacts.csv", params={"label": "grade a"}, headers=admin_headers)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert sorted(r["phone"] for r in rows) == ["+6281212345678", "+6285711112222"]
    assert {r["labelled_by"] for r in rows} == {"Rina", "Toko"}
    assert client.get("/api/contacts.csv", params={"label": "Nope"}, headers=admin_headers).status_code == 404
    assert client.get("/api/contacts.csv", params={"label": "Grade A"}).status_code == 401
    assert make_client(admin_token=None).get("/api/labels").status_code == 503


def test_waha_messages_join_the_conversation_and_stop_opts_out(client, admin_headers, drained):
    post_waha(client, samples.waha_message(BUDI_CHAT, "Halo, masih ada stok?", name="Budi"))
    drained()
    budi = contact_by_phone(client, admin_headers, BUDI_E164)
    assert budi["name"] == "Budi" and budi["window_open"] and budi["opted_out_at"] is None
    post_waha(client, samples.waha_message(BUDI_CHAT, "  Berhenti "))
    # The Cloud API path opts out the same way.
    body, headers = samples.encode(samples.inbound_text("6285711112222", "Siti", "STOP"))
    assert client.post("/webhooks/whatsapp", content=body, headers=headers).status_code == 200
    drained()
    budi = contact_by_phone(client, admin_headers, BUDI_E164)
    assert budi["opted_out_at"] is not None
    messages = client.get(f"/api/contacts/{budi['id']}/messages", headers=admin_headers).json()["items"]
    assert [(m["direction"], m["type"], m["text"]) for m in messages] == [
        ("inbound", "text", "Halo, masih ada stok?"),
        ("inbound", "text", "  Berhenti "),
    ]
    assert contact_by_phone(client, admin_headers, "+6285711112222")["opted_out_at"] is not None


def test_waha_receipts_move_a_message_sent_through_waha(client, admin_headers, drained):
    post_waha(client, samples.waha_message(BUDI_CHAT, "Halo"))
    drained()
    budi = contact_by_phone(client, admin_headers, BUDI_E164)
    sent_id = f"true_{BUDI_CHAT}_3EB0C767D26A1D8F2A1B"
    with session_scope() as session:
        record_outbound_message(
            session,
            session.get_one(Contact, budi["id"]),
            external_id=sent_id,
            type="text",
            text="Masih, kak",
            payload={},
            sent_at=datetime.now(UTC),
        )
    post_waha(client, samples.waha_ack(sent_id, 2, BUDI_CHAT))
    post_waha(client, samples.waha_ack(sent_id, 3, BUDI_CHAT))
    post_waha(client, samples.waha_ack(sent_id, 3, BUDI_CHAT))  # told twice, under a new envelope id
    drained()
    messages = client.get(f"/api/contacts/{budi['id']}/messages", headers=admin_headers).json()["items"]
    assert [(m["direction"], m["status"]) for m in messages] == [("inbound", None), ("outbound", "read")]
    with session_scope() as session:
        assert set(session.scalars(select(InboxEvent.state))) == {"processed"}


def test_webhook_with_a_bad_hmac_is_refused(make_client, drained):
    client = make_client(waha_hmac_key="waha-secret")
    event = samples.waha_label_chat("added", BUDI_CHAT, "1", "Lead")
    post_waha(client, event, status=401, hmac_key="not-the-secret")
    answer = post_waha(client, event, status=401)  # unsigned
    assert answer["field"] == "X-Webhook-Hmac"
    assert post_waha(client, event, hmac_key="waha-secret")["accepted"] == 1
    drained()


@pytest.mark.parametrize(
    ("envelope", "field"),
    [
        ([], "body"),
        ({"session": "default", "payload": {}}, "event"),
        ({"event": "label.chat.added", "payload": {"labelId": "1", "chatId": BUDI_CHAT}}, "session"),
        (samples.waha_envelope("label.chat.added", {"labelId": "1"}), "payload.chatId"),
        (samples.waha_envelope("label.upsert", {"id": "1"}), "payload.name"),
        (
            samples.waha_envelope("label.chat.added", {"labelId": True, "chatId": BUDI_CHAT}),
            "payload.labelId",
        ),
        ({**samples.waha_label_upsert("1", "Lead"), "timestamp": "yesterday"}, "timestamp"),
        (samples.waha_envelope("message", {"id": "x", "from": BUDI_CHAT}), "payload.timestamp"),
        (samples.waha_envelope("label.deleted", None), "payload"),
    ],
)
def test_malformed_webhooks_are_refused_naming_the_field(client, envelope, field):
    answer = post_waha(client, envelope, status=400)
    assert answer["field"] == field
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(InboxEvent)) == 0


def test_not_json_and_unhandled_events(client):
    answer = client.post("/webhooks/waha", content=b"{not json", headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    status = samples.waha_envelope("session.status", {"status": "WORKING"})
    assert post_waha(client, status) == {"accepted": 0, "duplicates": 0, "ignored": 1}
