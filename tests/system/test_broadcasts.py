"""Broadcasts to a labelled segment, end to end: WAHA labels and Cloud API messages in, the API
call, the expansion task and the outbound worker (real Celery on Redis), and what the (fake,
real HTTP) Cloud API received: what each customer would have got on their phone."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from models import Broadcast, OutboundMessage
from models.base import utcnow
from models.db import session_scope
from queueing.publish import expand_broadcast, send_outbound
from testkit import samples
from testkit.processes import CeleryProcess, wait_for
from testkit.waha import chat_of, label_contact, post_waha

pytestmark = pytest.mark.usefixtures("worker")

PROMO = "Promo akhir tahun: diskon 20% untuk pelanggan Grade A!"
TEMPLATE = {"name": "promo_grade_a", "language": "id", "parameters": ["20%"]}


def customer_writes(client, chat_id: str, text: str = "Halo kak") -> None:
    wa_id = chat_id.split("@")[0]
    body, headers = samples.encode(samples.inbound_text(wa_id, "Pelanggan", text))
    assert client.post("/webhooks/whatsapp", content=body, headers=headers).status_code == 200


def start_broadcast(client, headers, **request) -> int:
    answer = client.post("/api/broadcasts", json=request, headers=headers)
    assert answer.status_code == 202, answer.text
    return answer.json()["id"]


def progress(client, headers, broadcast_id: int) -> dict:
    answer = client.get(f"/api/broadcasts/{broadcast_id}", headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def finished_when_settled(client, headers, broadcast_id: int) -> dict:
    def done() -> dict | None:
        view = progress(client, headers, broadcast_id)
        return view if view["state"] == "expanded" and view["queued"] == 0 else None

    return wait_for(done, 90, f"broadcast {broadcast_id} expanded and sent")


def finished(worker, task: str) -> int:
    return sum(
        1
        for line in worker.log_path.read_text().splitlines()
        if "succeeded in" in line and f"{task}[" in line
    )


def test_broadcast_reaches_each_labelled_contact_once_and_skips_who_opted_out(
    client, admin_headers, cloud_api, drained, worker
):
    segment = [chat_of(i) for i in range(50)]
    for chat in segment:
        label_contact(client, chat, "2", "Grade A")
    others = [chat_of(i) for i in range(50, 53)]
    for chat in others:  # another label: not in the segment
        label_contact(client, chat, "1", "Lead")
    drained()
    label_contact(client, others[0], "2", "Grade A")  # given Grade A, then taken away
    drained()
    post_waha(client, samples.waha_label_chat("deleted", others[0], "2", "Grade A"))
    windowed = segment[:20]  # these wrote today: their 24-hour window is open
    for chat in windowed[1:]:
        customer_writes(client, chat)
    customer_writes(client, windowed[0], "  stop ")  # wrote today, and asked for no more messages
    drained()

    broadcast_id = start_broadcast(client, admin_headers, label="Grade A", text=PROMO, template=TEMPLATE)
    view = finished_when_settled(client, admin_headers, broadcast_id)

    received = cloud_api.accepted
    recipients = [body["to"] for body in received]
    expected = {chat.split("@")[0] for chat in segment[1:]}
    assert len(recipients) == 49 and set(recipients) == expected  # each once, nobody else
    texts = {body["to"] for body in received if body["type"] == "text"}
    assert texts == {chat.split("@")[0] for chat in windowed[1:]}
    assert all(body["text"]["body"] == PROMO for body in received if body["type"] == "text")
    templates = [body["template"] for body in received if body["type"] == "template"]
    assert len(templates) == 30 and {t["name"] for t in templates} == {"promo_grade_a"}
    assert (view["total"], view["sent"], view["skipped_opted_out"]) == (50, 49, 1)
    assert (view["failed"], view["blocked_window"], view["queued"]) == (0, 0, 0)
    assert view["sent_as"] == {"text": 19, "template": 30}

    # The broker delivers the expansion and every send task again: nobody gets it twice.
    with session_scope() as session:
        outbound_ids = list(session.scalars(select(OutboundMessage.id)))
    expansions, sends = finished(worker, "expand_broadcast"), finished(worker, "send_outbound")
    expand_broadcast(broadcast_id)
    send_outbound(outbound_ids)
    wait_for(lambda: finished(worker, "expand_broadcast") == expansions + 1, 30, "the expansion ran again")
    wait_for(
        lambda: finished(worker, "send_outbound") == sends + len(outbound_ids), 60, "the sends ran again"
    )
    assert len(cloud_api.accepted) == 49
    assert progress(client, admin_headers, broadcast_id)["sent"] == 49


def test_closed_windows_without_a_template_are_blocked_not_sent(client, admin_headers, cloud_api, drained):
    label_contact(client, chat_of(1), "2", "Grade A")
    label_contact(client, chat_of(2), "2", "Grade A")
    customer_writes(client, chat_of(1))
    drained()
    broadcast_id = start_broadcast(client, admin_headers, label="grade a", text=PROMO)
    view = finished_when_settled(client, admin_headers, broadcast_id)
    assert [(body["to"], body["type"]) for body in cloud_api.accepted] == [(chat_of(1).split("@")[0], "text")]
    assert (view["total"], view["sent"], view["blocked_window"]) == (2, 1, 1)


def test_a_broadcast_needs_a_known_label_and_the_admin_token(client, admin_headers, make_client):
    answer = client.post("/api/broadcasts", json={"label": "Nobody", "text": PROMO}, headers=admin_headers)
    assert answer.status_code == 422 and "Nobody" in answer.json()["detail"]
    assert client.post("/api/broadcasts", json={"label": "Grade A", "text": PROMO}).status_code == 401
    assert client.post("/api/broadcasts", json={"label": "Grade A"}, headers=admin_headers).status_code == 422
    assert client.get("/api/broadcasts/999", headers=admin_headers).status_code == 404


def test_a_broadcast_whose_expansion_task_was_lost_is_expanded_by_the_sweeper(
    client, admin_headers, cloud_api, drained
):
    chats = [chat_of(n) for n in range(3)]
    for chat in chats:
        label_contact(client, chat, "9", "Grade A")
    drained()
    # As if Redis lost the task right after the API answered 202: the row exists, nothing queued.
    with session_scope() as session:
        broadcast = Broadcast(
            label="Grade A", text=PROMO, template=TEMPLATE, published_at=utcnow() - timedelta(hours=1)
        )
        session.add(broadcast)
        session.flush()
        broadcast_id = broadcast.id

    beat = CeleryProcess.beat()
    try:
        view = finished_when_settled(client, admin_headers, broadcast_id)
    finally:
        beat.stop()
    assert view["total"] == 3
    assert sorted(body["to"] for body in cloud_api.accepted) == sorted(c.split("@")[0] for c in chats)
