"""Our files on the Cloud API over time: Meta forgets an uploaded media id after 30 days, so an
old upload is made again before it is used, and a send Meta refuses for its media id (131053) is
uploaded anew and sent once more, once. Upload failures are retried with backoff a bounded
number of times, then the message fails saying why.

Real PostgreSQL, Redis and Celery worker; the fake Cloud API takes uploads and sends, and is
scripted to fail them (formats-rich.md 2.1, 2.3).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from models import CloudMediaUpload, OutboundMessage
from models.base import utcnow
from models.db import session_scope
from testkit.processes import wait_for
from tests.system.test_rich_outbound import (
    PICTURE,
    conversation_of,
    customer_writes,
    send,
    sent_bodies,
    upload,
)


def image(ours: str, caption: str) -> dict:
    return {"type": "image", "image": {"id": ours, "caption": caption}}


def ended(key: str) -> OutboundMessage:
    """The agent's message sent with ``key`` once it has its end state."""

    def settled():
        with session_scope() as session:
            rows = list(session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)))
            done = [row for row in rows if row.state not in ("queued", "sending")]
            return done[-1] if len(done) == len(rows) and rows else None

    return wait_for(settled, 60, f"message {key} settled")


def test_an_upload_older_than_30_days_is_made_again_before_it_is_sent(
    client, worker, cloud_api, admin_headers
):
    customer_writes(client)
    conversation = conversation_of(client, admin_headers)
    ours = upload(client, admin_headers)
    assert send(client, admin_headers, conversation, image(ours, "Juni"), "old-0").status_code == 202
    sent_bodies(cloud_api, 1)
    with session_scope() as session:  # a month goes by
        session.execute(update(CloudMediaUpload).values(uploaded_at=utcnow() - timedelta(days=31)))
    for number in (1, 2):
        body = image(ours, f"Juli {number}")
        assert send(client, admin_headers, conversation, body, f"old-{number}").status_code == 202
        sent_bodies(cloud_api, number + 1)
    first, second, third = sent_bodies(cloud_api, 3)
    assert len(cloud_api.uploads) == 2  # uploaded again once, then the new id is reused
    old_id, new_id = (media_id for _, media_id in cloud_api.uploads)
    assert cloud_api.media[new_id].data == PICTURE
    assert first["image"]["id"] == old_id
    assert second["image"]["id"] == third["image"]["id"] == new_id


def test_a_media_id_meta_refuses_is_uploaded_again_and_sent_once_more(
    client, worker, cloud_api, admin_headers
):
    customer_writes(client)
    conversation = conversation_of(client, admin_headers)
    ours = upload(client, admin_headers)
    assert send(client, admin_headers, conversation, image(ours, "Juni"), "gone-0").status_code == 202
    sent_bodies(cloud_api, 1)

    cloud_api.fail_next(400, 131053)  # Meta no longer knows the id (it expired early)
    assert send(client, admin_headers, conversation, image(ours, "Juli"), "gone-1").status_code == 202
    bodies = sent_bodies(cloud_api, 2)
    row = ended("gone-1")
    assert row.state == "sent"
    assert len(cloud_api.uploads) == 2
    assert bodies[1]["image"] == {"id": cloud_api.uploads[1][1], "caption": "Juli"}
    assert [body["image"]["caption"] for body in bodies] == ["Juni", "Juli"]  # each delivered once

    # Refused again after the new upload: failed, saying so, and not tried a third time.
    cloud_api.fail_next(400, 131053)
    cloud_api.delay_next(0)  # the upload goes through
    cloud_api.fail_next(400, 131053)
    assert send(client, admin_headers, conversation, image(ours, "Agustus"), "gone-2").status_code == 202
    row = ended("gone-2")
    assert row.state == "failed"
    assert row.error["message"].startswith("Meta refused the file again after it was uploaded anew")
    assert len(cloud_api.uploads) == 3
    assert len(cloud_api.sent_bodies) == 2


def test_upload_failures_are_retried_then_the_message_fails_saying_why(
    client, worker, cloud_api, admin_headers
):
    customer_writes(client)
    conversation = conversation_of(client, admin_headers)
    ours = upload(client, admin_headers)
    cloud_api.fail_next(503, 2, times=2)  # "service temporarily unavailable", twice
    assert send(client, admin_headers, conversation, image(ours, "Juni"), "flaky").status_code == 202
    assert ended("flaky").state == "sent"
    assert len(cloud_api.uploads) == 1
    assert sent_bodies(cloud_api, 1)[0]["image"]["id"] == cloud_api.uploads[0][1]

    other = upload(client, admin_headers, PICTURE + b"2", name="lain.jpg")
    cloud_api.fail_next(503, 2, times=50)  # Meta's media endpoint stays down
    assert send(client, admin_headers, conversation, image(other, "Juli"), "down").status_code == 202
    row = ended("down")
    cloud_api.reset()
    assert row.state == "failed"
    assert row.error["message"].startswith("the file could not be uploaded to the Cloud API (8 attempts)")
    assert row.error["media_upload_failures"] == 8
