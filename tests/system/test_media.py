"""Media files end to end: an image a customer sends is fetched once from the Cloud API by the
media worker, checked, kept in the store and served to the team only; uploads for sending; the
refusals (a URL off the gateway's hosts, a file that does not match its sha256, too large)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from integrations.storage import CHUNK_BYTES, media_store
from integrations.whatsapp.base import PermanentError
from integrations.whatsapp.media import MediaSource, fetch_waha
from models import MediaFile, Message
from models.db import session_scope
from testkit import samples
from testkit.fakes.waha import FakeWaha
from testkit.processes import free_port, wait_for

PICTURE = b"\xff\xd8\xff\xe0" + os.urandom(300_000)  # a JPEG's magic, then enough bytes to stream


def send_image(client, media_id: str, wa_id: str = "6281299990001") -> tuple[bytes, dict]:
    """Post a customer's image message; returns the request, to post it again as Meta may."""
    image = {"id": media_id, "mime_type": "image/jpeg", "caption": "ini kak"}
    message = samples.message(wa_id, "image", image=image)
    payload = samples.envelope(messages=[message], contacts=[samples.profile(wa_id, "Rina")])
    body, headers = samples.encode(payload)
    assert client.post("/webhooks/whatsapp", content=body, headers=headers).status_code == 200
    return body, headers


def media_row() -> MediaFile:
    with session_scope() as session:
        return session.scalars(select(MediaFile)).one()


def settled() -> bool:
    with session_scope() as session:
        return session.scalar(select(MediaFile.state)) in ("stored", "failed")


def test_an_inbound_image_is_fetched_once_and_served_to_the_team_only(
    client, worker, cloud_api, admin_headers
):
    cloud_api.add_media("4401", PICTURE, "image/jpeg")
    body, headers = send_image(client, "4401")
    wait_for(settled, 60, "the image fetched")
    media = media_row()
    assert (media.state, media.size, media.sha256) == (
        "stored",
        len(PICTURE),
        hashlib.sha256(PICTURE).hexdigest(),
    )
    with session_scope() as session:
        message = session.get(Message, media.message_id)
        assert (message.type, message.text) == ("image", "ini kak")
    assert cloud_api.media_downloads("4401") == 1

    served = client.get(f"/api/media/{media.key}", headers=admin_headers)
    assert served.status_code == 200
    assert served.content == PICTURE
    assert served.headers["content-type"] == "image/jpeg"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert client.get(f"/api/media/{media.key}").status_code == 401
    assert client.get("/api/media/not-a-key", headers=admin_headers).status_code == 404

    # Meta delivers the same webhook again: nothing is fetched twice.
    assert client.post("/webhooks/whatsapp", content=body, headers=headers).json()["duplicates"] == 1
    with session_scope() as session:
        assert len(list(session.scalars(select(MediaFile)))) == 1
    assert cloud_api.media_downloads("4401") == 1


def test_a_file_that_does_not_match_its_sha256_is_failed_visibly_and_not_served(
    client, worker, cloud_api, admin_headers
):
    cloud_api.add_media("4402", PICTURE, "image/jpeg", sha256="0" * 64)
    send_image(client, "4402")
    wait_for(settled, 60, "the image refused")
    media = media_row()
    assert media.state == "failed"
    assert "sha256" in media.error["message"]
    assert client.get(f"/api/media/{media.key}", headers=admin_headers).status_code == 404


def test_a_media_url_off_the_gateways_hosts_is_never_fetched(client, worker, cloud_api):
    cloud_api.add_media("4403", PICTURE, "image/jpeg")
    cloud_api.media_url_base = "http://169.254.169.254"  # what a forged metadata answer would name
    send_image(client, "4403")
    wait_for(settled, 60, "the image refused")
    media = media_row()
    assert media.state == "failed"
    assert "169.254.169.254" in media.error["message"]
    assert cloud_api.media_downloads("4403") == 0


def test_a_gateway_outage_is_retried_until_the_file_comes(client, worker, cloud_api):
    cloud_api.add_media("4404", PICTURE, "image/jpeg")
    cloud_api.fail_next(503, code=131016, times=2)
    send_image(client, "4404")
    wait_for(settled, 60, "the image fetched after the outage")
    media = media_row()
    assert (media.state, media.attempts) == ("stored", 3)


def test_uploads_are_kept_for_sending_checked_by_kind(client, admin_headers):
    pdf = b"%PDF-1.4\n" + os.urandom(2000)
    answer = client.post(
        "/api/media", files={"file": ("invoice 42.pdf", pdf, "application/pdf")}, headers=admin_headers
    )
    assert answer.status_code == 201, answer.text
    uploaded = answer.json()
    assert uploaded["size"] == len(pdf)
    assert uploaded["sha256"] == hashlib.sha256(pdf).hexdigest()
    served = client.get(f"/api/media/{uploaded['id']}", headers=admin_headers)
    assert served.content == pdf
    assert served.headers["content-disposition"].startswith("attachment")

    # A name in another script: a plain fallback name, and the real one percent-encoded.
    named = client.post(
        "/api/media", files={"file": ("faktur 請求書.pdf", pdf, "application/pdf")}, headers=admin_headers
    )
    served = client.get(f"/api/media/{named.json()['id']}", headers=admin_headers)
    assert served.status_code == 200 and served.content == pdf
    disposition = served.headers["content-disposition"]
    assert 'filename="faktur .pdf"' in disposition
    assert "filename*=UTF-8''faktur%20%E8%AB%8B%E6%B1%82%E6%9B%B8.pdf" in disposition

    refused = client.post(
        "/api/media", files={"file": ("page.html", b"<script>", "text/html")}, headers=admin_headers
    )
    assert refused.status_code == 422
    assert "text/html" in refused.json()["detail"]
    too_big = client.post(
        "/api/media",
        files={"file": ("big.jpg", b"x" * (5 * 1024 * 1024 + 1), "image/jpeg")},
        headers=admin_headers,
    )
    assert too_big.status_code == 413
    anonymous = client.post("/api/media", files={"file": ("a.pdf", pdf, "application/pdf")})
    assert anonymous.status_code == 401
    with session_scope() as session:
        kept = {m.filename for m in session.scalars(select(MediaFile))}
        assert kept == {"invoice 42.pdf", "faktur 請求書.pdf"}  # nothing of the refused ones


def test_waha_media_comes_from_the_waha_server_with_its_key_and_nowhere_else():
    with FakeWaha() as waha:
        url = waha.add_file("voice.ogg", b"OggS" + os.urandom(5000), "audio/ogg; codecs=opus")
        source = MediaSource(
            "waha", waha.url, {"X-Api-Key": waha.api_key}, frozenset({"127.0.0.1"}), 10**6, 5
        )
        fetched = fetch_waha(source, url, None)
        try:
            assert (fetched.mime_type, fetched.size) == ("audio/ogg", 5004)
        finally:
            fetched.path.unlink()
        elsewhere = MediaSource("waha", waha.url, {}, frozenset({"waha.internal"}), 10**6, 5)
        with pytest.raises(PermanentError, match="not a gateway host"):
            fetch_waha(elsewhere, url, None)
        tiny = MediaSource("waha", waha.url, {"X-Api-Key": waha.api_key}, frozenset({"127.0.0.1"}), 100, 5)
        with pytest.raises(PermanentError, match="MEDIA_MAX_BYTES"):
            fetch_waha(tiny, url, None)


@pytest.fixture
def s3_server(monkeypatch):
    """moto's S3-compatible server on a free port: the media store's S3 client speaks real HTTP."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for name, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    endpoint = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return requests.get(endpoint, timeout=1).status_code < 500
        except requests.RequestException:
            return False

    try:
        wait_for(answers, 30, "moto's S3 server up")
        yield endpoint
    finally:
        server.terminate()
        server.wait(10)


def test_an_s3_compatible_store_keeps_and_streams_files(s3_server, tmp_path):
    import boto3

    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket="wacrm-media")
    store = media_store("s3://wacrm-media/chats", s3_server)
    video = tmp_path / "clip.mp4"
    video.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    assert not store.exists("k1")
    store.put("k1", video, "video/mp4")
    assert store.exists("k1")
    chunks = list(store.chunks("k1"))
    assert b"".join(chunks) == video.read_bytes()
    assert max(len(chunk) for chunk in chunks) <= CHUNK_BYTES  # streamed, never read whole
    listed = boto3.client("s3", endpoint_url=s3_server).list_objects_v2(Bucket="wacrm-media")
    assert [item["Key"] for item in listed["Contents"]] == ["chats/k1"]
