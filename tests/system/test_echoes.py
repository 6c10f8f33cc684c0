"""Who sent each message; staff replies typed on the phone; customers' reactions and edits.

Real PostgreSQL, Redis and Celery workers; WAHA and the Cloud API are the fakes of testkit/,
their webhooks posted signed with the channel's secret. A reply typed on the phone (WAHA
``message.any`` with ``fromMe``, Cloud ``smb_message_echoes``) joins the history once, as
staff's, stops the response clock and cancels the nudge waiting for the customer; the echo of a
send of ours adds nothing. A reaction lands on its message, an edit changes the text and keeps
the old one without a second automated answer.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from models import AdaptiveFollowup, InboxEvent, Message, OutboundMessage, RoutingDecision
from models.db import session_scope
from models.outbox import QUEUED, SENDING
from testkit import samples
from testkit.fakes.waha import FakeWaha
from testkit.processes import wait_for

from .test_accounts import add, token_of

BUDI, SITI = "6281212345678", "6285711112222"
BUDI_CHAT = f"{BUDI}@c.us"
APP_SECRET = "settings-app-secret"
W = {
    "name": "toko-surabaya",
    "kind": "waha",
    "session": "surabaya",
    "api_key": "waha-api-key-of-surabaya",
    "hmac_key": "waha-hmac-of-surabaya",
    "team": "surabaya",
}
OPENING_HOURS_ANSWER = "Toko kami buka Senin-Sabtu pukul 08.00-17.00. Ada lagi yang bisa kami bantu?"


@pytest.fixture
def api(make_client):
    """The app as deployed: webhooks must be signed (the settings number with its app secret)."""
    return make_client(development_mode=False, whatsapp_app_secret=APP_SECRET, waha_hmac_key="unused-key")


@pytest.fixture
def waha():
    with FakeWaha(api_key=W["api_key"]) as fake:
        yield fake


@pytest.fixture
def surabaya(api, admin_headers, waha):
    """The WAHA number, whose phone Citra (an agent of its team) answers."""
    add(api, admin_headers, "citra", teams=("surabaya",))
    spec = {**W, "waha_url": waha.url, "phone_agent": "citra"}
    answer = api.post("/api/channels", json=spec, headers=admin_headers)
    assert answer.status_code == 201, answer.text
    assert answer.json()["phone_agent"] == "citra"
    return answer.json()


def post_waha(api, envelope: dict) -> dict:
    body, headers = samples.waha_encode(envelope, W["hmac_key"])
    answer = api.post("/webhooks/waha", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def post_cloud(api, document: dict) -> dict:
    body, headers = samples.encode(document, APP_SECRET)
    answer = api.post("/webhooks/whatsapp", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def settled(timeout: float = 60) -> None:
    """Every inbox event processed, every inbound message routed, every outbox row finished."""

    def done() -> bool:
        with session_scope() as session:
            pending = session.scalar(select(func.count()).where(InboxEvent.state == "pending"))
            unsent = session.scalar(select(func.count()).where(OutboundMessage.state.in_((QUEUED, SENDING))))
            inbound = session.scalar(select(func.count()).where(Message.direction == "inbound"))
            decided = session.scalar(select(func.count()).select_from(RoutingDecision))
        return pending == 0 and unsent == 0 and inbound == decided

    wait_for(done, timeout, "inbox processed, messages routed, outbox settled")


def contact_id(api, headers, wa_id: str) -> int:
    [contact] = api.get("/api/contacts", params={"phone": f"+{wa_id}"}, headers=headers).json()["items"]
    return contact["id"]


def messages(api, headers, wa_id: str) -> list[dict]:
    answer = api.get(f"/api/contacts/{contact_id(api, headers, wa_id)}/messages", headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


def conversation(api, headers, wa_id: str) -> dict:
    detail = api.get(f"/api/contacts/{contact_id(api, headers, wa_id)}", headers=headers).json()
    [only] = detail["conversations"]
    return only


def outbound(api, headers, wa_id: str) -> list[dict]:
    return [m for m in messages(api, headers, wa_id) if m["direction"] == "outbound"]


def followups() -> list[tuple[str, str | None]]:
    with session_scope() as session:
        return [(row.state, row.reason) for row in session.scalars(select(AdaptiveFollowup))]


def decisions() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(RoutingDecision))


def test_a_reply_typed_on_the_waha_phone_is_staffs_once_and_stops_the_clock(
    api, admin_headers, surabaya, waha, worker
):
    asked_at = int(time.time()) - 120
    question = samples.waha_message(
        BUDI_CHAT, "Kak, sepatu ukuran 42 masih ada?", at=asked_at, session="surabaya"
    )
    post_waha(api, question)
    # WAHA repeats the customer's message as message.any (another envelope, the same message).
    post_waha(
        api,
        samples.waha_message_any(
            BUDI_CHAT,
            question["payload"]["body"],
            from_me=False,
            id=question["payload"]["id"],
            at=asked_at,
            session="surabaya",
        ),
    )
    settled()
    assert conversation(api, admin_headers, BUDI)["awaiting_reply_since"] is not None

    typed = samples.waha_message_any(
        BUDI_CHAT, "Masih ada kak, mau warna apa?", at=asked_at + 45, session="surabaya"
    )
    post_waha(api, typed)
    assert post_waha(api, typed) == {"accepted": 0, "duplicates": 1}  # the same envelope again
    post_waha(api, {**typed, "id": samples.waha_event_id()})  # the same message, another envelope
    settled()

    history = messages(api, admin_headers, BUDI)
    assert [(m["direction"], m["text"]) for m in history] == [
        ("inbound", "Kak, sepatu ukuran 42 masih ada?"),
        ("outbound", "Masih ada kak, mau warna apa?"),
    ]
    inbound, reply = history
    assert inbound["sender"] is None and inbound["kind"] == "text"
    assert reply["sender"] == {"type": "phone", "agent": "citra"}  # the channel's phone_agent
    assert reply["kind"] == "text" and reply["content"] == {"body": "Masih ada kak, mau warna apa?"}
    assert reply["external_id"] == typed["payload"]["id"] and reply["status"] == "sent"
    journey = conversation(api, admin_headers, BUDI)
    assert journey["first_responder"] == "human" and journey["first_response_seconds"] == 45
    assert journey["awaiting_reply_since"] is None
    assert not waha.accepted  # nothing was sent by us: the staff's message is only recorded

    post_waha(api, samples.waha_ack(typed["payload"]["id"], 3, BUDI_CHAT, session="surabaya"))
    settled()
    assert outbound(api, admin_headers, BUDI)[0]["status"] == "read"


def test_our_own_send_echoed_back_is_not_a_second_message_and_a_phone_reply_cancels_the_nudge(
    api, admin_headers, surabaya, waha, worker
):
    post_waha(api, samples.waha_message(BUDI_CHAT, "Halo kak, mau pesan sepatu", session="surabaya"))
    settled()
    conversation_id = conversation(api, admin_headers, BUDI)["id"]
    citra = token_of(api, "citra")
    answer = api.post(
        f"/api/conversations/{conversation_id}/messages",
        json={"text": "Boleh kak, mau ukuran berapa?"},
        headers={**citra, "Idempotency-Key": "reply-1"},
    )
    assert answer.status_code == 202, answer.text
    settled()
    [sent] = outbound(api, admin_headers, BUDI)
    assert sent["sender"] == {"type": "agent", "agent": "citra"}
    assert sent["external_id"] == waha.sent_ids[0]
    assert followups() == [("pending", None)]  # a question: a nudge waits for Budi's answer

    post_waha(api, waha.echo_of(0, session="surabaya"))  # WAHA: source "api"
    post_waha(api, waha.echo_of(0, source="app", session="surabaya"))  # NOWEB's wrong flag
    settled()
    [still] = outbound(api, admin_headers, BUDI)
    assert still["sender"] == {"type": "agent", "agent": "citra"}

    later = int(time.time()) + 2  # WhatsApp's times are whole seconds: after our reply's

    post_waha(
        api, samples.waha_message_any(BUDI_CHAT, "Kak, jadi ambil yang hitam?", at=later, session="surabaya")
    )
    settled()
    assert [m["sender"]["type"] for m in outbound(api, admin_headers, BUDI)] == ["agent", "phone"]
    assert followups() == [("cancelled", "staff answered on the phone")]
    assert len(waha.accepted) == 1


def test_waha_reactions_and_edits_change_their_message_and_answer_nothing(
    api, admin_headers, surabaya, waha, worker
):
    first = samples.waha_message(BUDI_CHAT, "Mau pesan 2 pasang", session="surabaya")
    post_waha(api, first)
    post_waha(api, samples.waha_message_any(BUDI_CHAT, "Sudah kami catat kak", session="surabaya"))
    settled()
    ours = outbound(api, admin_headers, BUDI)[0]["external_id"]
    before = decisions()

    post_waha(api, samples.waha_reaction(BUDI_CHAT, ours, "❤️", session="surabaya"))
    post_waha(
        api, samples.waha_edited(BUDI_CHAT, first["payload"]["id"], "Mau pesan 3 pasang", session="surabaya")
    )
    settled()
    inbound, reply = messages(api, admin_headers, BUDI)
    assert [r["emoji"] for r in reply["reactions"]] == ["❤️"] and reply["reactions"][0]["from"] == BUDI
    assert inbound["text"] == "Mau pesan 3 pasang" and inbound["edited_at"] is not None
    assert [p["text"] for p in inbound["previous_texts"]] == ["Mau pesan 2 pasang"]

    # Budi changes his reaction, then takes it away: one reaction per person, the latest.
    later = int(time.time()) + 5
    post_waha(api, samples.waha_reaction(BUDI_CHAT, ours, "👍", at=later, session="surabaya"))
    settled()
    assert [r["emoji"] for r in outbound(api, admin_headers, BUDI)[0]["reactions"]] == ["👍"]
    post_waha(api, samples.waha_reaction(BUDI_CHAT, ours, "", at=later + 1, session="surabaya"))
    settled()
    assert outbound(api, admin_headers, BUDI)[0]["reactions"] == []
    assert decisions() == before and len(messages(api, admin_headers, BUDI)) == 2
    assert not waha.accepted


@pytest.fixture
def faq(api, admin_headers):
    entry = {"questions": ["jam buka toko", "toko buka jam berapa"], "answer": OPENING_HOURS_ANSWER}
    assert api.put("/api/faq/opening_hours", json=entry, headers=admin_headers).status_code == 200


def test_a_cloud_echo_is_staffs_reply_once_and_its_status_applies(api, admin_headers, cloud_api, worker):
    asked_at = int(time.time()) - 60
    post_cloud(
        api,
        samples.envelope(
            messages=[samples.text(SITI, "Kak, bisa kirim ke Bali minggu ini?", at=asked_at)],
            contacts=[samples.profile(SITI, "Siti")],
        ),
    )
    settled()
    echo = samples.echoes(SITI, "Bisa kak, ongkirnya 25 ribu", at=asked_at + 30, name="Siti")
    post_cloud(api, echo)
    assert post_cloud(api, echo) == {"accepted": 0, "duplicates": 1}
    settled()

    [reply] = outbound(api, admin_headers, SITI)
    assert reply["sender"] == {"type": "phone", "agent": None}  # the settings number has no phone_agent
    assert reply["text"] == "Bisa kak, ongkirnya 25 ribu" and reply["kind"] == "text"
    journey = conversation(api, admin_headers, SITI)
    assert journey["first_responder"] == "human" and journey["first_response_seconds"] == 30
    assert journey["awaiting_reply_since"] is None
    assert not cloud_api.accepted

    wamid = echo["entry"][0]["changes"][0]["value"]["message_echoes"][0]["id"]
    post_cloud(api, samples.envelope(statuses=[samples.status(wamid, "delivered", SITI)]))
    settled()
    assert outbound(api, admin_headers, SITI)[0]["status"] == "delivered"


def test_cloud_reactions_and_edits_and_a_phone_reply_after_an_faq_answer(
    api, admin_headers, faq, cloud_api, worker
):
    question = samples.text(BUDI, "toko buka jam berapa?")
    post_cloud(api, samples.envelope(messages=[question], contacts=[samples.profile(BUDI, "Budi")]))
    settled()
    [answer] = outbound(api, admin_headers, BUDI)
    assert answer["sender"] == {"type": "automation", "agent": None}
    assert answer["text"] == OPENING_HOURS_ANSWER
    assert followups() == [("pending", None)]  # the answer asks "anything else?"
    before, sent = decisions(), len(cloud_api.accepted)

    post_cloud(api, samples.envelope(messages=[samples.reaction(BUDI, answer["external_id"], "🙏")]))
    post_cloud(
        api,
        samples.envelope(messages=[samples.edit(BUDI, question["id"], "toko buka jam berapa hari minggu?")]),
    )
    settled()
    asked, answered = messages(api, admin_headers, BUDI)
    assert [(r["emoji"], r["from"]) for r in answered["reactions"]] == [("🙏", BUDI)]
    assert asked["text"] == "toko buka jam berapa hari minggu?"
    assert asked["content"] == {"body": "toko buka jam berapa hari minggu?"}
    assert [p["text"] for p in asked["previous_texts"]] == ["toko buka jam berapa?"]
    # The edit is no new question: no second decision, no second automated answer.
    assert decisions() == before and len(cloud_api.accepted) == sent

    post_cloud(api, samples.echoes(BUDI, "Hari Minggu tutup kak 🙏", at=int(time.time()) + 2))
    settled()
    assert [m["sender"]["type"] for m in outbound(api, admin_headers, BUDI)] == ["automation", "phone"]
    assert followups() == [("cancelled", "staff answered on the phone")]


def test_every_outbound_message_says_who_sent_it(client, admin_headers, cloud_api, worker):
    add(client, admin_headers, "ayu")
    body, headers = samples.encode(samples.inbound_text(BUDI, "Budi Santoso", "Halo kak, mau tanya"))
    assert client.post("/webhooks/whatsapp", content=body, headers=headers).status_code == 200
    settled()
    conversation_id = conversation(client, admin_headers, BUDI)["id"]
    replied = client.post(
        f"/api/conversations/{conversation_id}/messages",
        json={"text": "Halo kak Budi, ada yang bisa dibantu?"},
        headers={**token_of(client, "ayu"), "Idempotency-Key": "ayu-1"},
    )
    assert replied.status_code == 202, replied.text
    settled()
    order = samples.order_event(
        "order.created", total=150000, currency="IDR", estimated_delivery_date="2026-12-20"
    )
    body, headers = samples.encode(order)
    assert client.post("/webhooks/orders", content=body, headers=headers).status_code == 202
    settled()

    senders = [(m["sender"]["type"], m["sender"]["agent"]) for m in outbound(client, admin_headers, BUDI)]
    assert senders == [("agent", "ayu"), ("order", None)]
    assert all(
        m["sender"] is None for m in messages(client, admin_headers, BUDI) if m["direction"] == "inbound"
    )
