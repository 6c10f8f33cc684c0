"""From webhook to rows a user can query, through the real Celery worker on Redis and PostgreSQL."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select, update

from models import Contact, Conversation, Deal, InboxEvent, Message
from models.base import utcnow
from models.db import session_scope
from pipeline import context, identity
from testkit import samples

BUDI, SITI, ANDI = "6281212345678", "6285711112222", "6281398765432"

pytestmark = pytest.mark.usefixtures("worker")


def post(client, payload):
    body, headers = samples.encode(payload)
    answer = client.post("/webhooks/whatsapp", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def contacts(client, admin_headers, **params) -> list[dict]:
    answer = client.get("/api/contacts", params=params, headers=admin_headers)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


def messages(client, admin_headers, contact_id: int) -> list[dict]:
    return client.get(f"/api/contacts/{contact_id}/messages", headers=admin_headers).json()["items"]


def test_a_message_from_a_new_number_becomes_contact_conversation_and_deal(client, admin_headers, drained):
    post(client, samples.inbound_text(BUDI, "Budi Santoso", "Halo, masih ada stok?"))
    drained()

    [contact] = contacts(client, admin_headers)
    assert contact["phone"] == "+6281212345678"
    assert contact["name"] == "Budi Santoso"
    assert contact["window_open"] is True
    detail = client.get(f"/api/contacts/{contact['id']}", headers=admin_headers).json()
    assert {"kind": "phone", "value": "+6281212345678"} in detail["identities"]
    assert detail["open_deal"]["stage"] == "new"
    [conversation] = detail["conversations"]
    assert conversation["message_count"] == 1
    assert conversation["window_open"] is True
    assert conversation["awaiting_reply_since"] is not None
    [message] = messages(client, admin_headers, contact["id"])
    assert (message["direction"], message["type"], message["text"]) == (
        "inbound",
        "text",
        "Halo, masih ada stok?",
    )


def test_batch_from_several_senders(client, admin_headers, drained):
    post(
        client,
        samples.envelope(
            messages=[
                samples.text(BUDI, "Halo"),
                samples.text(SITI, "Permisi"),
                samples.text(BUDI, "Ada promo?"),
            ],
            contacts=[samples.profile(BUDI, "Budi"), samples.profile(SITI, "Siti")],
        ),
    )
    drained()
    found = {c["name"]: c for c in contacts(client, admin_headers)}
    assert set(found) == {"Budi", "Siti"}
    assert [m["text"] for m in messages(client, admin_headers, found["Budi"]["id"])] == ["Halo", "Ada promo?"]
    assert [m["text"] for m in messages(client, admin_headers, found["Siti"]["id"])] == ["Permisi"]


def test_replayed_webhook_is_processed_once(client, admin_headers, drained):
    payload = samples.inbound_text(BUDI, "Budi", "Halo")
    post(client, payload)
    drained()
    assert post(client, payload) == {"accepted": 0, "duplicates": 1}
    drained()
    [contact] = contacts(client, admin_headers)
    assert len(messages(client, admin_headers, contact["id"])) == 1


MESSAGE_TYPES = [
    (
        {"type": "image", "image": {"id": "m1", "mime_type": "image/jpeg", "caption": "warna lain?"}},
        "image",
        None,
    ),
    ({"type": "document", "document": {"id": "m2", "filename": "invoice.pdf"}}, "document", None),
    ({"type": "audio", "audio": {"id": "m3", "voice": True}}, "audio", None),
    ({"type": "video", "video": {"id": "m4", "caption": "unboxing"}}, "video", None),
    (
        {
            "type": "interactive",
            "interactive": {"type": "list_reply", "list_reply": {"id": "x", "title": "Ukuran L"}},
        },
        "interactive",
        None,
    ),
    ({"type": "button", "button": {"payload": "YES", "text": "Sudah sampai"}}, "button", None),
    (
        {"type": "location", "location": {"latitude": -6.2, "longitude": 106.8, "name": "Toko"}},
        "location",
        None,
    ),
    ({"type": "reaction", "reaction": {"message_id": "wamid.x", "emoji": "👍"}}, "reaction", None),
    (
        {
            "type": "order",
            "order": {"catalog_id": "c", "product_items": [{"product_retailer_id": "p", "quantity": 2}]},
        },
        "order",
        None,
    ),
    ({"type": "poll", "poll": {"question": "?"}}, "unsupported", "poll"),
    (
        {"type": "unsupported", "errors": [{"code": 131051, "title": "Message type unknown"}]},
        "unsupported",
        None,
    ),
]


def test_every_message_type_is_stored_never_dropped(client, admin_headers, drained):
    sent = []
    for body, _, _ in MESSAGE_TYPES:
        message = samples.message(BUDI, body["type"], **{k: v for k, v in body.items() if k != "type"})
        sent.append(message)
    post(client, samples.envelope(messages=sent, contacts=[samples.profile(BUDI, "Budi")]))
    drained()
    [contact] = contacts(client, admin_headers)
    stored = {m["external_id"]: m for m in messages(client, admin_headers, contact["id"])}
    assert len(stored) == len(MESSAGE_TYPES)
    for message, (_, kind, raw_type) in zip(sent, MESSAGE_TYPES, strict=True):
        assert (stored[message["id"]]["type"], stored[message["id"]]["raw_type"]) == (kind, raw_type)
    texts = {m["type"]: m["text"] for m in stored.values() if m["raw_type"] is None}
    assert texts["image"] == "warna lain?"
    assert texts["interactive"] == "Ukuran L"
    assert texts["reaction"] == "👍"
    with session_scope() as session:
        poll = session.scalars(select(Message).where(Message.raw_type == "poll")).one()
        assert poll.payload["poll"] == {"question": "?"}, "an unknown type keeps its raw payload"


def test_ad_referral_is_kept_as_the_contacts_lead_source(client, admin_headers, drained):
    post(
        client, samples.inbound_text(BUDI, "Budi", "Halo", referral=samples.ad_referral("120210000000000777"))
    )
    post(client, samples.inbound_text(BUDI, "Budi", "Jadi berapa?"))
    drained()
    [contact] = contacts(client, admin_headers)
    assert contact["lead_source"] == "ad:120210000000000777"
    detail = client.get(f"/api/contacts/{contact['id']}", headers=admin_headers).json()
    assert detail["referral"]["ctwa_clid"] == "ARAkLk3x"


def test_invalid_number_is_recorded_with_its_reason(client, admin_headers, drained):
    post(client, samples.inbound_text("999123456", "Nobody", "test"))
    post(client, samples.inbound_text(SITI, "Siti", "Halo"))
    drained()
    found = {c["name"]: c for c in contacts(client, admin_headers)}
    assert found["Nobody"]["phone"] is None
    assert found["Nobody"]["phone_invalid_reason"] == "unknown country code"
    assert found["Siti"]["phone"] == "+6285711112222", "the worker goes on after an invalid number"
    with session_scope() as session:
        assert (
            session.scalar(select(InboxEvent.state).where(InboxEvent.kind == "message").limit(1))
            == "processed"
        )


def test_order_system_phone_and_whatsapp_id_are_one_contact(client, admin_headers, drained):
    with session_scope() as session:
        from_orders = identity.resolve_contact(
            session, identity.from_typed_phone("0812-1234-5678", external_id="C-42", name="Budi Santoso")
        ).id
    post(client, samples.inbound_text(BUDI, "Budi WA", "Halo"))
    drained()
    [contact] = contacts(client, admin_headers)
    assert contact["id"] == from_orders
    assert contact["name"] == "Budi Santoso"
    # And the other way round: a typed "+62 812..." finds the WhatsApp contact.
    with session_scope() as session:
        again = identity.resolve_contact(session, identity.from_typed_phone("+62 812 1234 5678"))
        assert again.id == from_orders


def test_contact_belongs_to_its_company_and_its_open_deal_too(client, admin_headers, drained):
    with session_scope() as session:
        for phone in ("0812-1234-5678", "0857-1111-2222"):
            identity.resolve_contact(session, identity.from_typed_phone(phone, company="CV Maju Jaya"))
    post(client, samples.inbound_text(BUDI, "Budi", "Halo"))
    drained()
    found = contacts(client, admin_headers)
    assert [c["company"] for c in found] == ["CV Maju Jaya", "CV Maju Jaya"]
    with session_scope() as session:
        deal = session.scalars(select(Deal)).one()
        assert deal.company_id is not None and deal.status == "open"


def test_contacts_that_prove_to_be_one_person_are_merged_keeping_history(client, admin_headers, drained):
    # A username-only sender (BSUID, no phone) and a phone sender are two contacts at first...
    anonymous = samples.text(BUDI, "dari username")
    anonymous.pop("from")
    anonymous["from_user_id"] = "ID.1502576394655843"
    post(client, samples.envelope(messages=[anonymous]))
    post(client, samples.inbound_text(BUDI, "Budi", "dari nomor"))
    drained()
    assert len(contacts(client, admin_headers)) == 2
    # ...until one message carries both identities.
    both = samples.text(BUDI, "keduanya")
    both["from_user_id"] = "ID.1502576394655843"
    post(client, samples.envelope(messages=[both], contacts=[samples.profile(BUDI, "Budi")]))
    drained()
    [survivor] = contacts(client, admin_headers)
    texts = sorted(m["text"] for m in messages(client, admin_headers, survivor["id"]))
    assert texts == ["dari nomor", "dari username", "keduanya"]
    with session_scope() as session:
        absorbed = session.scalars(select(Contact).where(Contact.merged_into_id.is_not(None))).one()
    moved = client.get(f"/api/contacts/{absorbed.id}", headers=admin_headers).json()
    assert moved["id"] == survivor["id"], "the merged id answers with the contact it became"


def test_changed_number_keeps_the_same_contact(client, admin_headers, drained):
    post(client, samples.inbound_text(BUDI, "Budi", "Halo"))
    drained()
    change = samples.message(
        BUDI, "system", system={"type": "user_changed_number", "body": "changed", "wa_id": "6281299998888"}
    )
    post(client, samples.envelope(messages=[change]))
    drained()
    post(client, samples.inbound_text("6281299998888", "Budi", "nomor baru"))
    drained()
    [contact] = contacts(client, admin_headers)
    assert contact["phone"] == "+6281299998888"
    assert len(messages(client, admin_headers, contact["id"])) == 3


def test_window_and_last_times_follow_the_newest_message_even_out_of_order(client, admin_headers, drained):
    now = int(time.time())
    post(client, samples.inbound_text(BUDI, "Budi", "baru", at=now - 3600))
    drained()
    post(client, samples.inbound_text(BUDI, "Budi", "lama", at=now - 5400))
    drained()
    [contact] = contacts(client, admin_headers)
    [conversation] = client.get(f"/api/contacts/{contact['id']}", headers=admin_headers).json()[
        "conversations"
    ]
    assert conversation["message_count"] == 2
    assert conversation["last_inbound_at"] == contact["last_inbound_at"]
    with session_scope() as session:
        stored = session.scalars(select(Conversation)).one()
        assert int(stored.last_inbound_at.timestamp()) == now - 3600
        assert int(stored.window_expires_at.timestamp()) == now - 3600 + 24 * 3600


def test_window_is_closed_a_day_after_the_customers_last_message(client, admin_headers, drained):
    post(client, samples.inbound_text(BUDI, "Budi", "kemarin", at=int(time.time()) - 30 * 3600))
    drained()
    [contact] = contacts(client, admin_headers)
    assert contact["window_open"] is False


def _outbound(external_id: str) -> None:
    """What the outbound worker does once the gateway accepted a message."""
    with session_scope() as session:
        contact = identity.resolve_contact(session, identity.from_whatsapp(BUDI))
        context.record_outbound_message(
            session,
            contact,
            external_id=external_id,
            type="text",
            text="Pesanan diproses",
            payload={},
            sent_at=utcnow(),
            responder="human",  # a reply typed by a person
        )


def _status_of(external_id: str) -> tuple[str | None, dict | None]:
    with session_scope() as session:
        message = session.scalars(select(Message).where(Message.external_id == external_id)).one()
        return message.status, message.error


def test_status_before_its_message_is_applied_when_the_message_appears(client, drained):
    post(client, samples.envelope(statuses=[samples.status("wamid.out.early", "delivered", BUDI)]))
    drained()
    _outbound("wamid.out.early")
    assert _status_of("wamid.out.early")[0] == "delivered"


def test_status_never_moves_backwards(client, drained):
    _outbound("wamid.out.order")
    now = int(time.time())
    for state in ("read", "delivered", "sent", "failed"):
        post(client, samples.envelope(statuses=[samples.status("wamid.out.order", state, BUDI, at=now)]))
    drained()
    assert _status_of("wamid.out.order")[0] == "read"


def test_failed_status_keeps_the_gateways_error(client, drained):
    _outbound("wamid.out.failed")
    error = {"code": 131047, "title": "Re-engagement message", "message": "Re-engagement message"}
    post(
        client,
        samples.envelope(statuses=[samples.status("wamid.out.failed", "failed", BUDI, errors=[error])]),
    )
    drained()
    assert _status_of("wamid.out.failed") == ("failed", error)


def test_reply_time_is_measured_from_the_customers_message(client, drained):
    post(client, samples.inbound_text(BUDI, "Budi", "Halo", at=int(time.time()) - 90))
    drained()
    _outbound("wamid.out.reply")
    with session_scope() as session:
        conversation = session.scalars(select(Conversation)).one()
        assert conversation.awaiting_reply_since is None
        assert 85 <= conversation.last_response_seconds <= 150


def test_event_the_broker_never_got_is_swept_and_processed(client, admin_headers, drained, monkeypatch):
    import producers.inbox
    from schedules.sweepers import sweep_inbox

    def broker_down(_ids):
        raise ConnectionError("broker unavailable")

    monkeypatch.setattr(producers.inbox, "enqueue", broker_down)
    assert post(client, samples.inbound_text(BUDI, "Budi", "Halo")) == {"accepted": 1, "duplicates": 0}
    with session_scope() as session:
        assert session.scalars(select(InboxEvent.state)).one() == "pending"
        session.execute(update(InboxEvent).values(enqueued_at=utcnow().replace(year=2000)))
    assert sweep_inbox() == 1
    drained()
    [contact] = contacts(client, admin_headers)
    assert len(messages(client, admin_headers, contact["id"])) == 1
