"""A retried broadcast POST (a timeout, a proxy's retry, a double click) is one broadcast: the
``Idempotency-Key`` header maps to it. End to end through the API, a real Celery worker on Redis
and the (fake, real HTTP) Cloud API: what each customer would have got on their phone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from models import Broadcast, OutboundMessage
from models.db import session_scope
from testkit.processes import wait_for
from testkit.waha import chat_of, label_contact

pytestmark = pytest.mark.usefixtures("worker")

PROMO = "Promo akhir tahun: diskon 20% untuk pelanggan Grade A!"
TEMPLATE = {"name": "promo_grade_a", "language": "id", "parameters": ["20%"]}
SEGMENT = [chat_of(i) for i in range(5)]


@pytest.fixture
def segment(client, drained) -> list[str]:
    for chat in SEGMENT:
        label_contact(client, chat, "2", "Grade A")
    drained()
    return [chat.split("@")[0] for chat in SEGMENT]


def post(client, admin_headers, key: str | None, **body):
    body.setdefault("template", TEMPLATE)  # nobody wrote today: the window is closed
    headers = {**admin_headers, **({"Idempotency-Key": key} if key is not None else {})}
    return client.post("/api/broadcasts", json=body, headers=headers)


def sent_when_settled(client, admin_headers, broadcast_id: int, expected: int) -> dict:
    def done() -> dict | None:
        view = client.get(f"/api/broadcasts/{broadcast_id}", headers=admin_headers).json()
        return view if view["state"] == "expanded" and view["queued"] == 0 else None

    view = wait_for(done, 90, f"broadcast {broadcast_id} expanded and sent")
    assert view["sent"] == expected
    return view


def broadcasts() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(Broadcast))


def test_a_retried_post_with_the_same_key_is_the_same_broadcast(client, admin_headers, cloud_api, segment):
    first = post(client, admin_headers, "promo-2026-12", label="Grade A", text=PROMO)
    assert first.status_code == 202, first.text
    broadcast_id = first.json()["id"]
    sent_when_settled(client, admin_headers, broadcast_id, len(segment))

    again = post(client, admin_headers, "promo-2026-12", label="Grade A", text=PROMO)
    assert again.status_code == 202, again.text
    assert again.json()["id"] == broadcast_id
    assert again.headers["Idempotent-Replayed"] == "true"
    sent_when_settled(client, admin_headers, broadcast_id, len(segment))
    assert broadcasts() == 1
    recipients = [body["to"] for body in cloud_api.accepted]
    assert sorted(recipients) == sorted(segment)  # each customer once


def test_retries_racing_each_other_make_one_broadcast(client, admin_headers, cloud_api, segment):
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(lambda _: post(client, admin_headers, "race-1", label="Grade A", text=PROMO), range(8))
        )
    assert {answer.status_code for answer in answers} == {202}
    [broadcast_id] = {answer.json()["id"] for answer in answers}
    sent_when_settled(client, admin_headers, broadcast_id, len(segment))
    assert broadcasts() == 1
    assert sorted(body["to"] for body in cloud_api.accepted) == sorted(segment)


def test_the_same_key_for_another_broadcast_is_refused_naming_the_header(
    client, admin_headers, cloud_api, segment
):
    first = post(client, admin_headers, "promo-A", label="Grade A", text=PROMO)
    assert first.status_code == 202, first.text
    other = post(client, admin_headers, "promo-A", label="Grade A", text="Another text")
    assert other.status_code == 422, other.text
    assert "Idempotency-Key" in other.json()["detail"]
    sent_when_settled(client, admin_headers, first.json()["id"], len(segment))
    assert broadcasts() == 1
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(OutboundMessage)) == len(segment)


def test_without_a_key_each_post_is_a_broadcast_and_a_key_too_long_is_refused(client, admin_headers, segment):
    assert post(client, admin_headers, None, label="Grade A", text=PROMO).status_code == 202
    assert post(client, admin_headers, None, label="Grade A", text=PROMO).status_code == 202
    assert broadcasts() == 2
    too_long = post(client, admin_headers, "k" * 1000, label="Grade A", text=PROMO)
    assert too_long.status_code == 422
    assert "Idempotency-Key" in too_long.text
    assert broadcasts() == 2
