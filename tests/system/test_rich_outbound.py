"""Every outbound kind, end to end: an agent's rich message is checked before it is queued, and the
real worker sends it through the real gateway clients to the fake Cloud API and fake WAHA.

Real PostgreSQL, Redis and Celery worker; the fakes record each body exactly as it arrived and
answer the Cloud API media upload endpoint as Meta documents it (formats-rich.md 2.1).
"""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from models import CloudMediaUpload, Contact, Message, Order, OutboundMessage
from models.base import utcnow
from models.db import session_scope
from testkit import samples
from testkit.fakes.waha import FakeWaha
from testkit.processes import CeleryProcess, free_port, wait_for
from testkit.waha import chat_of, label_contact
from tests.system.conftest import SHARED

BUDI = "6281212345678"
PICTURE = b"\xff\xd8\xff\xe0" + os.urandom(40_000)


def customer_writes(client, wa_id: str = BUDI, text: str = "Halo kak") -> None:
    payload = samples.envelope(
        messages=[samples.text(wa_id, text)], contacts=[samples.profile(wa_id, "Budi")]
    )
    body, headers = samples.encode(payload)
    assert client.post("/webhooks/whatsapp", content=body, headers=headers).status_code == 200


def conversation_of(client, headers, wa_id: str = BUDI) -> int:
    def found():
        items = client.get("/api/contacts", params={"phone": wa_id}, headers=headers).json()["items"]
        if not items:
            return None
        detail = client.get(f"/api/contacts/{items[0]['id']}", headers=headers).json()
        return detail["conversations"][0]["id"] if detail["conversations"] else None

    return wait_for(found, 30, "the customer's conversation")


def send(client, headers, conversation: int, body: dict, key: str):
    return client.post(
        f"/api/conversations/{conversation}/messages",
        json=body,
        headers={**headers, "Idempotency-Key": key},
    )


def outbox_rows() -> list[OutboundMessage]:
    with session_scope() as session:
        return list(session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))


def sent_bodies(cloud_api, count: int) -> list[dict]:
    wait_for(lambda: len(cloud_api.sent_bodies) >= count, 60, f"{count} messages at the fake Cloud API")
    return [body for _, body in cloud_api.sent_bodies]


def upload(
    client, headers, data: bytes = PICTURE, mime: str = "image/jpeg", name: str = "katalog.jpg"
) -> str:
    answer = client.post("/api/media", files={"file": (name, data, mime)}, headers=headers)
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


# One of each kind, as the client writes it (formats-rich.md section 1).
KINDS = [
    {"type": "text", "text": {"body": "Cek https://toko.example/promo", "preview_url": True}},
    {"type": "image", "image": {"link": "https://cdn.example.com/p.jpg", "caption": "Katalog Juni"}},
    {"type": "video", "video": {"link": "https://cdn.example.com/v.mp4", "caption": "Demo"}},
    {"type": "audio", "audio": {"link": "https://cdn.example.com/a.ogg", "voice": True}},
    {"type": "document", "document": {"link": "https://cdn.example.com/i.pdf", "filename": "invoice-42.pdf"}},
    {"type": "sticker", "sticker": {"link": "https://cdn.example.com/s.webp"}},
    {
        "type": "location",
        "location": {"latitude": -6.2, "longitude": 106.8, "name": "Toko Pusat", "address": "Jl. Sudirman 1"},
    },
    {
        "type": "contacts",
        "contacts": [
            {
                "name": {"formatted_name": "Budi Santoso", "first_name": "Budi"},
                "phones": [{"phone": "+6281212345678", "type": "CELL", "wa_id": "6281212345678"}],
            }
        ],
    },
    {"type": "reaction", "reaction": {"message_id": "wamid.TARGET", "emoji": "👍"}},
    {
        "type": "interactive",
        "interactive": {
            "type": "button",
            "header": {"type": "text", "text": "Pesanan #42"},
            "body": {"text": "Konfirmasi pengiriman?"},
            "footer": {"text": "Balas dalam 24 jam"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "confirm:42", "title": "Ya, kirim"}},
                    {"type": "reply", "reply": {"id": "change:42", "title": "Ubah alamat"}},
                    {"type": "reply", "reply": {"id": "cancel:42", "title": "Batal"}},
                ]
            },
        },
    },
    {
        "type": "interactive",
        "interactive": {
            "type": "list",
            "body": {"text": "Pilih layanan"},
            "action": {
                "button": "Lihat opsi",
                "sections": [
                    {
                        "title": "Pengiriman",
                        "rows": [{"id": "ship_std", "title": "Reguler", "description": "2-3 hari"}],
                    },
                    {"title": "Lainnya", "rows": [{"id": "agent", "title": "Bicara dengan CS"}]},
                ],
            },
        },
    },
    {
        "type": "interactive",
        "interactive": {
            "type": "cta_url",
            "header": {"type": "image", "image": {"link": "https://cdn.example.com/banner.png"}},
            "body": {"text": "Lacak paket Anda"},
            "action": {
                "name": "cta_url",
                "parameters": {"display_text": "Lacak", "url": "https://x.id/t/42"},
            },
        },
    },
    {
        "type": "interactive",
        "interactive": {
            "type": "flow",
            "body": {"text": "Isi formulir pendaftaran"},
            "action": {
                "name": "flow",
                "parameters": {
                    "flow_message_version": "3",
                    "flow_token": "lead:6281212345678:1723450000",
                    "flow_id": "1234567890",
                    "flow_cta": "Mulai",
                    "flow_action": "navigate",
                    "flow_action_payload": {"screen": "WELCOME"},
                },
            },
        },
    },
    {
        "type": "text",
        "text": {"body": "Ini jawabannya"},
        "context": {"message_id": "wamid.QUOTED"},
    },
]


def test_each_outbound_kind_reaches_the_cloud_api_with_the_documented_body(
    client, worker, cloud_api, admin_headers
):
    customer_writes(client)
    conversation = conversation_of(client, admin_headers)
    for number, body in enumerate(KINDS):
        answer = send(client, admin_headers, conversation, body, f"kind-{number}")
        assert answer.status_code == 202, (body, answer.text)
    received = sent_bodies(cloud_api, len(KINDS))
    rows = {row.id: row for row in outbox_rows()}
    expected = {
        f"outbox:{row.id}": {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": BUDI,
            **row.body,
            "biz_opaque_callback_data": f"outbox:{row.id}",
        }
        for row in rows.values()
    }
    assert {body["biz_opaque_callback_data"]: body for body in received} == expected
    as_stored = sorted(json.dumps(row.body, sort_keys=True) for row in rows.values())
    assert as_stored == sorted(json.dumps(body, sort_keys=True) for body in KINDS)
    wait_for(lambda: all(row.state == "sent" for row in outbox_rows()), 30, "every kind recorded as sent")
    # The conversation shows a readable text for each.
    with session_scope() as session:
        texts = {row.body["type"]: row.text for row in session.scalars(select(OutboundMessage))}
    assert texts["image"] == "Katalog Juni"
    assert texts["location"] == "Toko Pusat"


def test_our_image_is_uploaded_to_the_cloud_api_once_and_its_id_reused(
    client, worker, cloud_api, admin_headers
):
    customer_writes(client)
    conversation = conversation_of(client, admin_headers)
    ours = upload(client, admin_headers)
    for number in range(2):
        body = {"type": "image", "image": {"id": ours, "caption": f"Katalog {number}"}}
        assert send(client, admin_headers, conversation, body, f"img-{number}").status_code == 202
        sent_bodies(cloud_api, number + 1)  # one after the other: the second finds the first's id
    first, second = sent_bodies(cloud_api, 2)
    assert len(cloud_api.uploads) == 1
    cloud_id = cloud_api.uploads[0][1]
    assert cloud_api.media[cloud_id].data == PICTURE  # Meta has exactly our file
    assert first["image"] == {"id": cloud_id, "caption": "Katalog 0"}
    assert second["image"] == {"id": cloud_id, "caption": "Katalog 1"}
    with session_scope() as session:
        assert session.scalar(select(CloudMediaUpload.cloud_media_id)) == cloud_id

    # The message list shows the media of the message, as the file we keep.
    contact_id = client.get("/api/contacts", params={"phone": BUDI}, headers=admin_headers).json()["items"][
        0
    ]["id"]
    wait_for(lambda: all(row.state == "sent" for row in outbox_rows()), 30, "recorded as sent")
    messages = client.get(f"/api/contacts/{contact_id}/messages", headers=admin_headers).json()["items"]
    outbound = [m for m in messages if m["direction"] == "outbound"]
    assert [m["media"] for m in outbound] == [
        {"id": ours, "url": f"/api/media/{ours}", "mime_type": "image/jpeg", "size": len(PICTURE)}
    ] * 2
    inbound = [m for m in messages if m["direction"] == "inbound"]
    assert inbound[0]["media"] is None  # a text has none


def test_our_file_in_an_interactive_header_and_a_template_header_is_uploaded_once_and_sent_by_metas_id(
    client, worker, cloud_api, admin_headers
):
    customer_writes(client)
    conversation = conversation_of(client, admin_headers)
    ours = upload(client, admin_headers)
    header_buttons = {
        "type": "interactive",
        "interactive": {
            "type": "button",
            "header": {"type": "image", "image": {"id": ours}},
            "body": {"text": "Katalog Juni: pesan sekarang?"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "order", "title": "Pesan"}}]},
        },
    }
    template = {
        "type": "template",
        "template": {
            "name": "promo_juni",
            "language": {"code": "id"},
            "components": [
                {"type": "header", "parameters": [{"type": "image", "image": {"id": ours}}]},
                {"type": "body", "parameters": [{"type": "text", "text": "Budi"}]},
            ],
        },
    }
    assert send(client, admin_headers, conversation, header_buttons, "hdr-0").status_code == 202
    sent_bodies(cloud_api, 1)
    assert send(client, admin_headers, conversation, template, "hdr-1").status_code == 202
    buttons_sent, template_sent = sent_bodies(cloud_api, 2)
    assert len(cloud_api.uploads) == 1  # one file, one channel: one upload
    cloud_id = cloud_api.uploads[0][1]
    assert cloud_api.media[cloud_id].data == PICTURE
    assert buttons_sent["interactive"]["header"] == {"type": "image", "image": {"id": cloud_id}}
    assert buttons_sent["interactive"]["action"] == header_buttons["interactive"]["action"]
    assert template_sent["template"]["components"] == [
        {"type": "header", "parameters": [{"type": "image", "image": {"id": cloud_id}}]},
        {"type": "body", "parameters": [{"type": "text", "text": "Budi"}]},
    ]
    # The outbox keeps what the agent wrote: our id, which the message list serves.
    assert [row.body for row in outbox_rows()] == [header_buttons, template]

    # A header file that is not an image is refused naming the header, and nothing is queued.
    pdf = upload(client, admin_headers, b"%PDF-1.4 katalog", "application/pdf", "katalog.pdf")
    wrong = {**header_buttons, "interactive": {**header_buttons["interactive"]}}
    wrong["interactive"]["header"] = {"type": "image", "image": {"id": pdf}}
    refused = send(client, admin_headers, conversation, wrong, "hdr-2")
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith("interactive.header.image.id: the file is application/pdf")
    assert len(outbox_rows()) == 2


def test_an_inbound_image_shows_its_media_in_the_message_list(client, worker, cloud_api, admin_headers):
    cloud_api.add_media("5501", PICTURE, "image/jpeg")
    image = {"id": "5501", "mime_type": "image/jpeg", "caption": "ini kak"}
    payload = samples.envelope(
        messages=[samples.message(BUDI, "image", image=image)], contacts=[samples.profile(BUDI, "Budi")]
    )
    body, headers = samples.encode(payload)
    assert client.post("/webhooks/whatsapp", content=body, headers=headers).status_code == 200
    conversation_of(client, admin_headers)
    contact_id = client.get("/api/contacts", params={"phone": BUDI}, headers=admin_headers).json()["items"][
        0
    ]["id"]

    def shown():
        items = client.get(f"/api/contacts/{contact_id}/messages", headers=admin_headers).json()["items"]
        return items and items[0]["media"] and items[0]["media"]["size"] and items[0]["media"]

    media = wait_for(shown, 60, "the image stored and shown")
    assert media["mime_type"] == "image/jpeg"
    assert media["size"] == len(PICTURE)
    assert media["url"] == f"/api/media/{media['id']}"
    served = client.get(media["url"], headers=admin_headers)
    assert served.status_code == 200
    assert served.content == PICTURE


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {
                "type": "interactive",
                "interactive": {
                    "type": "button",
                    "body": {"text": "Pilih"},
                    "action": {
                        "buttons": [
                            {"type": "reply", "reply": {"id": f"b{i}", "title": f"Pilihan {i}"}}
                            for i in range(4)
                        ]
                    },
                },
            },
            "interactive.action.buttons",
        ),
        (
            {
                "type": "interactive",
                "interactive": {
                    "type": "button",
                    "body": {"text": "Pilih"},
                    "action": {"buttons": [{"type": "reply", "reply": {"id": "b", "title": "x" * 21}}]},
                },
            },
            "interactive.action.buttons[0].reply.title",
        ),
        (
            {"type": "image", "image": {"link": "https://cdn.example.com/p.jpg", "caption": "x" * 1025}},
            "image.caption",
        ),
        ({"type": "image", "image": {"id": "no-such-file"}}, "image.id"),
    ],
)
def test_a_body_over_a_limit_is_refused_naming_the_field_and_nothing_is_queued(
    client, worker, cloud_api, admin_headers, body, field
):
    customer_writes(client)
    conversation = conversation_of(client, admin_headers)
    answer = send(client, admin_headers, conversation, body, "too-much")
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith(f"{field}:")
    assert outbox_rows() == []


def test_a_closed_window_refuses_a_text_but_takes_a_template(client, worker, cloud_api, admin_headers):
    customer_writes(client)
    conversation = conversation_of(client, admin_headers)
    with session_scope() as session:
        session.execute(update(Contact).values(last_inbound_at=utcnow() - timedelta(hours=25)))
    answer = send(client, admin_headers, conversation, {"text": "Halo lagi"}, "late")
    assert answer.status_code == 422
    assert "window is closed" in answer.json()["detail"]
    assert outbox_rows() == []


@pytest.fixture
def waha_channel(client, admin_headers):
    with FakeWaha(api_key="waha-key") as fake:
        spec = {
            "name": "toko-waha",
            "kind": "waha",
            "session": "default",
            "waha_url": fake.url,
            "api_key": "waha-key",
            "hmac_key": "waha-hmac",
            "team": "sales",
        }
        answer = client.post("/api/channels", json=spec, headers=admin_headers)
        assert answer.status_code == 201, answer.text
        yield fake


def test_a_waha_channel_refuses_a_list_naming_the_gateway_and_sends_an_image_by_send_image(
    client, worker, admin_headers, waha_channel
):
    payload = samples.waha_message(f"{BUDI}@c.us", "Halo", session="default")
    body, headers = samples.waha_encode(payload, "waha-hmac")
    assert client.post("/webhooks/waha", content=body, headers=headers).status_code == 200
    conversation = conversation_of(client, admin_headers)
    listing = KINDS[10]
    answer = send(client, admin_headers, conversation, listing, "waha-list")
    assert answer.status_code == 422
    assert "WAHA" in answer.json()["detail"]
    assert outbox_rows() == []

    ours = upload(client, admin_headers)
    image = {"type": "image", "image": {"id": ours, "caption": "Katalog"}}
    assert send(client, admin_headers, conversation, image, "waha-image").status_code == 202
    linked = {"type": "document", "document": {"link": "https://cdn.example.com/i.pdf", "filename": "i.pdf"}}
    assert send(client, admin_headers, conversation, linked, "waha-doc").status_code == 202
    wait_for(lambda: len(waha_channel.sent()) >= 2, 60, "both at WAHA")
    sent = dict(waha_channel.sent())
    assert sent["sendImage"]["chatId"] == f"{BUDI}@c.us"
    assert sent["sendImage"]["caption"] == "Katalog"
    assert sent["sendImage"]["file"]["mimetype"] == "image/jpeg"
    # Our file goes as a signed link WAHA fetches from PUBLIC_URL, not as its bytes in the body.
    assert "data" not in sent["sendImage"]["file"]
    link = sent["sendImage"]["file"]["url"]
    assert link.startswith(f"http://testserver/f/{ours}?")
    fetched = client.get(link.removeprefix("http://testserver"))
    assert fetched.status_code == 200
    assert fetched.content == PICTURE
    assert client.get(f"/f/{ours}").status_code == 404  # without its signature
    forged = link.removeprefix("http://testserver").replace("signature=", "signature=A")
    assert client.get(forged).status_code == 404
    # The link is a credential until it expires: the history keeps the file, not its signature.
    with session_scope() as session:
        images = session.scalars(select(Message).where(Message.type == "image"))
        kept = json.dumps([m.payload for m in images])
    assert f"/f/{ours}" in kept and "signature=" not in kept
    assert sent["sendFile"]["file"] == {
        "mimetype": "application/pdf",
        "url": "https://cdn.example.com/i.pdf",
        "filename": "i.pdf",
    }


def test_a_link_waha_cannot_fetch_still_gets_the_customer_the_image_once_as_base64(client, admin_headers):
    # PUBLIC_URL on a closed port: WAHA (fetching links as WAHA does) cannot download our file.
    paused = [process for process in SHARED if process.process.poll() is None]
    for process in paused:
        process.stop()  # so the send is this worker's, with its PUBLIC_URL
    closed = f"http://127.0.0.1:{free_port()}"
    queues = "ingest,outbound,outbound_bulk,media"
    worker = CeleryProcess.worker(concurrency=1, queues=queues, PUBLIC_URL=closed)
    try:
        with FakeWaha(api_key="waha-key", fetch_files=True) as waha:
            spec = {
                "name": "toko-waha-2",
                "kind": "waha",
                "session": "default",
                "waha_url": waha.url,
                "api_key": "waha-key",
                "hmac_key": "waha-hmac",
                "team": "sales",
            }
            assert client.post("/api/channels", json=spec, headers=admin_headers).status_code == 201
            worker.wait_ready()
            payload = samples.waha_message(f"{BUDI}@c.us", "Halo", session="default")
            body, headers = samples.waha_encode(payload, "waha-hmac")
            assert client.post("/webhooks/waha", content=body, headers=headers).status_code == 200
            conversation = conversation_of(client, admin_headers)
            image = {"type": "image", "image": {"id": upload(client, admin_headers), "caption": "Katalog"}}
            assert send(client, admin_headers, conversation, image, "waha-unreachable").status_code == 202
            wait_for(lambda: [row.state for row in outbox_rows()] == ["sent"], 60, "the image sent")
            assert waha.files_received == [PICTURE]  # the customer got it once, whole
            [(endpoint, sent)] = waha.sent()
            assert endpoint == "sendImage" and "url" not in sent["file"]
            tried = [r["body"]["file"] for r in waha.requests if r["path"] == "/api/sendImage"]
            assert tried[0]["url"].startswith(f"{closed}/f/") and "data" in tried[1]
            [row] = outbox_rows()
            assert "PUBLIC_URL" in row.error["message"]  # why, for ops to fix it
    finally:
        worker.stop()
        for process in paused:
            process.restart().wait_ready()


def test_an_faq_answer_with_an_image_goes_as_an_image_message_with_the_answer_as_caption(
    client, worker, routing, cloud_api, admin_headers
):
    answer = "Ini katalog terbaru kami. Ada produk yang menarik untuk Anda?"
    entry = {
        "questions": ["minta katalog", "ada katalog produk"],
        "answer": answer,
        "kind": "marketing",
        "media_url": "https://cdn.example.com/katalog-juni.jpg",
        "media_type": "image",
    }
    assert client.put("/api/faq/catalogue", json=entry, headers=admin_headers).status_code == 200
    customer_writes(client, text="kak minta katalog dong")
    [body] = sent_bodies(cloud_api, 1)
    assert body["type"] == "image"
    assert body["image"] == {"link": "https://cdn.example.com/katalog-juni.jpg", "caption": answer}
    assert "text" not in body


def test_a_broadcast_can_be_any_kind_and_uploads_its_file_once(
    client, worker, cloud_api, admin_headers, drained
):
    chats = [chat_of(i) for i in range(3)]
    for chat in chats:
        label_contact(client, chat, "2", "Grade A")
    drained()
    for chat in chats:
        customer_writes(client, chat.split("@")[0])
    drained()
    ours = upload(client, admin_headers)
    too_long = {"type": "image", "image": {"id": ours, "caption": "x" * 1025}}
    refused = client.post(
        "/api/broadcasts", json={"label": "Grade A", "message": too_long}, headers=admin_headers
    )
    assert refused.status_code == 422
    assert refused.json()["detail"].startswith("message.image.caption:")

    image = {"type": "image", "image": {"id": ours, "caption": "Promo Juni"}}
    answer = client.post(
        "/api/broadcasts", json={"label": "Grade A", "message": image}, headers=admin_headers
    )
    assert answer.status_code == 202, answer.text
    received = sent_bodies(cloud_api, 3)
    assert len(cloud_api.uploads) == 1
    cloud_id = cloud_api.uploads[0][1]
    assert sorted(body["to"] for body in received) == sorted(chat.split("@")[0] for chat in chats)
    assert all(body["image"] == {"id": cloud_id, "caption": "Promo Juni"} for body in received)
    view = client.get(f"/api/broadcasts/{answer.json()['id']}", headers=admin_headers).json()
    assert view["message"] == image
    assert view["text"] == "Promo Juni"


def post_order(client, event) -> None:
    body, headers = samples.encode(event)
    assert client.post("/webhooks/orders", content=body, headers=headers).status_code == 202


def test_the_tracker_page_shows_a_shipped_order_and_escapes_what_came_from_outside(
    client, worker, cloud_api, admin_headers, drained
):
    post_order(client, samples.order_event("order.created", total=150000))
    post_order(client, samples.order_event("order.paid"))
    post_order(
        client,
        samples.order_event(
            "order.shipped", courier="<script>alert(1)</script>", tracking_number="JNE0123456789"
        ),
    )
    drained()

    def shipped():
        view = client.get("/api/orders/SO-1001", headers=admin_headers).json()
        return view if view.get("tracking_number") else None

    view = wait_for(shipped, 30, "the order shipped")
    url = view["tracker_url"].removeprefix("http://testserver")  # PUBLIC_URL
    assert url.startswith("/t/")
    page = client.get(url, headers={"Accept-Language": "en-GB,en;q=0.9"})  # no sign-in
    assert page.status_code == 200
    assert "JNE0123456789" in page.text
    assert "<script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "Shipped" in page.text and "Payment received" in page.text
    assert "Delivered: not yet" in page.text
    indonesian = client.get(url, params={"lang": "id"})
    assert "Dikirim" in indonesian.text and "Nomor resi" in indonesian.text

    # Another order's link cannot be made from this one.
    order_part, signature = url.removeprefix("/t/").split("-", 1)
    assert client.get(f"/t/{int(order_part) + 1}-{signature}").status_code == 404
    assert client.get("/t/not-a-token").status_code == 404
    with session_scope() as session:
        order = session.scalars(select(Order)).one()
        assert order.tracker_views == 2
        assert order.tracker_viewed_at is not None
