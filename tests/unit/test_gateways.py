"""The WhatsApp gateways against local fakes over real HTTP: what they send, and how each kind of
failure is classified (the class decides whether the outbound worker may send again)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import requests

from integrations.storage import ChunkReader
from integrations.whatsapp import (
    BlockedWindow,
    CloudApiGateway,
    MediaRefused,
    OutgoingMessage,
    PermanentError,
    SandboxGateway,
    TemplateCall,
    TransientError,
    Unconfirmed,
    WahaGateway,
    gateway_for,
)
from integrations.whatsapp.base import Attachment
from settings import Settings
from testkit.fakes import FakeServer, Reply
from testkit.fakes.cloud_api import FakeCloudApi
from testkit.fakes.waha import FakeWaha
from testkit.processes import free_port

TEMPLATE = TemplateCall(name="order_update", language="id", parameters=["Budi", "INV-0042", "JNE"])
MESSAGE = OutgoingMessage(
    outbound_id=42, to="+6281212345678", text="Pesanan Anda sudah dikirim", template=TEMPLATE
)
TEXT_ONLY = OutgoingMessage(outbound_id=43, to="+6281212345678", text="Terima kasih!")


@pytest.fixture
def cloud_api():
    with FakeCloudApi() as fake:
        yield fake


@pytest.fixture
def cloud(cloud_api: FakeCloudApi):
    gateway = CloudApiGateway(
        cloud_api.base_url, cloud_api.access_token, cloud_api.phone_number_id, timeout=2
    )
    yield gateway
    gateway.close()


@pytest.fixture
def waha():
    with FakeWaha() as fake:
        yield fake


# Cloud API: what is sent.


def test_cloud_sends_text_inside_the_window(cloud: CloudApiGateway, cloud_api: FakeCloudApi):
    sent = cloud.send(MESSAGE, window_open=True)

    expected = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "6281212345678",
        "type": "text",
        "text": {"preview_url": False, "body": "Pesanan Anda sudah dikirim"},
        "biz_opaque_callback_data": "outbox:42",
    }
    assert sent.type == "text"
    assert sent.request == expected
    assert sent.external_id.startswith("wamid.")
    [request] = cloud_api.requests
    assert request["path"] == f"/v21.0/{cloud_api.phone_number_id}/messages"
    assert request["headers"]["authorization"] == f"Bearer {cloud_api.access_token}"
    assert request["body"] == expected
    assert cloud_api.accepted == [expected]


def test_cloud_sends_the_template_outside_the_window(cloud: CloudApiGateway, cloud_api: FakeCloudApi):
    sent = cloud.send(MESSAGE, window_open=False)

    assert sent.type == "template"
    assert sent.request["template"] == {
        "name": "order_update",
        "language": {"code": "id"},
        "components": [
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "Budi"},
                    {"type": "text", "text": "INV-0042"},
                    {"type": "text", "text": "JNE"},
                ],
            }
        ],
    }
    assert sent.request["biz_opaque_callback_data"] == "outbox:42"
    assert "text" not in sent.request
    assert cloud_api.accepted == [sent.request]


def test_a_template_without_parameters_has_no_components(cloud: CloudApiGateway):
    message = OutgoingMessage(1, "+6281212345678", "Halo", TemplateCall("hello_world", "en_US"))

    sent = cloud.send(message, window_open=False)

    assert sent.request["template"] == {"name": "hello_world", "language": {"code": "en_US"}}


def test_closed_window_without_a_template_is_blocked_without_a_request(
    cloud: CloudApiGateway, cloud_api: FakeCloudApi
):
    with pytest.raises(BlockedWindow):
        cloud.send(TEXT_ONLY, window_open=False)

    assert cloud_api.requests == []


# Cloud API: how failures are classified.


def test_a_5xx_without_an_error_code_is_transient(cloud: CloudApiGateway, cloud_api: FakeCloudApi):
    cloud_api.fail_next(500)

    with pytest.raises(TransientError) as raised:
        cloud.send(MESSAGE, window_open=True)

    assert raised.value.code is None
    assert raised.value.error["http_status"] == 500
    assert cloud_api.accepted == []


@pytest.mark.parametrize("status", [502, 504])
def test_a_proxys_502_or_504_is_unconfirmed(cloud: CloudApiGateway, cloud_api: FakeCloudApi, status: int):
    # The proxy forwarded the request and lost Meta's answer: Meta may have the message.
    cloud_api.accept_then_fail_next(status)

    with pytest.raises(Unconfirmed) as raised:
        cloud.send(MESSAGE, window_open=True)

    assert raised.value.error["http_status"] == status
    assert len(cloud_api.accepted) == 1


def test_a_graph_error_code_decides_even_behind_a_5xx(cloud: CloudApiGateway, cloud_api: FakeCloudApi):
    cloud_api.fail_next(502, code=2)  # Meta's own "service temporarily unavailable"

    with pytest.raises(TransientError):
        cloud.send(MESSAGE, window_open=True)


def test_throughput_limit_is_transient_with_the_retry_after_hint(
    cloud: CloudApiGateway, cloud_api: FakeCloudApi
):
    cloud_api.fail_next(429, code=130429, retry_after=7)

    with pytest.raises(TransientError) as raised:
        cloud.send(MESSAGE, window_open=True)

    assert raised.value.code == 130429
    assert raised.value.retry_after == 7
    assert raised.value.error["code"] == 130429


@pytest.mark.parametrize("code", [131056, 131057, 4, 80007, 131000, 131016, 2, 1])
def test_rate_and_availability_codes_are_transient_whatever_the_status(
    cloud: CloudApiGateway, cloud_api: FakeCloudApi, code: int
):
    cloud_api.fail_next(400, code=code)

    with pytest.raises(TransientError) as raised:
        cloud.send(MESSAGE, window_open=True)

    assert raised.value.code == code
    assert raised.value.retry_after is None


def test_reengagement_error_is_a_blocked_window(cloud: CloudApiGateway, cloud_api: FakeCloudApi):
    cloud_api.fail_next(400, code=131047)

    with pytest.raises(BlockedWindow) as raised:
        cloud.send(MESSAGE, window_open=True)

    assert raised.value.code == 131047


def test_a_media_id_meta_cannot_use_is_a_media_refusal(cloud: CloudApiGateway, cloud_api: FakeCloudApi):
    cloud_api.fail_next(400, code=131053)  # "media upload error": an expired id, say

    with pytest.raises(MediaRefused) as raised:
        cloud.send(MESSAGE, window_open=True)

    assert raised.value.code == 131053
    assert isinstance(raised.value, PermanentError)  # as is, it cannot succeed


@pytest.mark.parametrize("code", [131026, 132001])
def test_undeliverable_and_template_errors_are_permanent_and_keep_what_meta_said(
    cloud: CloudApiGateway, cloud_api: FakeCloudApi, code: int
):
    cloud_api.fail_next(400, code=code)

    with pytest.raises(PermanentError) as raised:
        cloud.send(MESSAGE, window_open=False)

    assert type(raised.value) is PermanentError
    assert raised.value.code == code
    assert raised.value.error["code"] == code
    assert raised.value.error["message"].startswith(f"(#{code})")
    assert raised.value.error["error_data"]["messaging_product"] == "whatsapp"
    assert "fbtrace_id" in raised.value.error


def test_a_4xx_without_an_error_code_is_permanent(cloud: CloudApiGateway, cloud_api: FakeCloudApi):
    cloud_api.fail_next(403)

    with pytest.raises(PermanentError) as raised:
        cloud.send(MESSAGE, window_open=True)

    assert raised.value.error["http_status"] == 403


def test_wrong_token_is_permanent(cloud_api: FakeCloudApi):
    gateway = CloudApiGateway(cloud_api.base_url, "not-the-token", cloud_api.phone_number_id, timeout=2)

    with pytest.raises(PermanentError) as raised:
        gateway.send(MESSAGE, window_open=True)

    assert raised.value.code == 190
    assert cloud_api.accepted == []


def test_read_timeout_after_the_gateway_accepted_is_unconfirmed(cloud_api: FakeCloudApi):
    gateway = CloudApiGateway(
        cloud_api.base_url, cloud_api.access_token, cloud_api.phone_number_id, timeout=0.5
    )
    cloud_api.delay_next(3)

    with pytest.raises(Unconfirmed):
        gateway.send(MESSAGE, window_open=True)

    # The message did reach the customer: sending it again would send it twice.
    assert len(cloud_api.accepted) == 1


def test_connection_dropped_after_sending_is_unconfirmed(cloud: CloudApiGateway, cloud_api: FakeCloudApi):
    cloud_api.drop_next()

    with pytest.raises(Unconfirmed) as raised:
        cloud.send(MESSAGE, window_open=True)

    assert not isinstance(raised.value, TransientError)
    assert len(cloud_api.accepted) == 1


def test_connection_refused_is_transient():
    gateway = CloudApiGateway(f"http://127.0.0.1:{free_port()}/v21.0", "token", "1234567890", timeout=2)

    with pytest.raises(TransientError) as raised:
        gateway.send(MESSAGE, window_open=True)

    assert "ConnectionError" in str(raised.value)


def test_a_2xx_without_a_message_id_is_unconfirmed():
    class NoId(FakeServer):
        def handle(self, path: str, headers: dict[str, str], body: Any) -> Reply:
            return Reply(200, {"messaging_product": "whatsapp", "contacts": [], "messages": []})

    with NoId() as fake:
        gateway = CloudApiGateway(f"{fake.root_url}/v21.0", "token", "1234567890", timeout=2)
        with pytest.raises(Unconfirmed) as raised:
            gateway.send(MESSAGE, window_open=True)

    assert raised.value.error["http_status"] == 200


# WAHA.


def test_waha_sends_text_to_the_chat_id_with_the_api_key(waha: FakeWaha):
    gateway = WahaGateway(waha.url, waha.api_key, None, timeout=2)

    # A WhatsApp Business app session has no 24-hour window: still text, no template.
    sent = gateway.send(MESSAGE, window_open=False)

    expected = {"session": "default", "chatId": "6281212345678@c.us", "text": "Pesanan Anda sudah dikirim"}
    assert sent.type == "text"
    assert sent.request == expected
    assert sent.external_id.startswith("true_6281212345678@c.us_")
    [request] = waha.requests
    assert request["path"] == "/api/sendText"
    assert request["headers"]["x-api-key"] == waha.api_key
    assert waha.accepted == [expected]


def test_waha_takes_the_serialized_id_of_an_id_object():
    with FakeWaha(api_key=None, id_as_object=True) as fake:
        sent = WahaGateway(fake.url, None, "toko", timeout=2).send(TEXT_ONLY, window_open=True)

        assert sent.external_id.startswith("true_6281212345678@c.us_")
        assert sent.request["session"] == "toko"
        assert "x-api-key" not in fake.requests[0]["headers"]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (500, TransientError),
        (503, TransientError),
        (502, Unconfirmed),
        (429, TransientError),
        (422, PermanentError),
    ],
)
def test_waha_failures_are_classified_by_status(waha: FakeWaha, status: int, error: type[Exception]):
    waha.fail_next(status)

    with pytest.raises(error) as raised:
        WahaGateway(waha.url, waha.api_key, None, timeout=2).send(TEXT_ONLY, window_open=True)

    assert raised.value.error == {"message": "scripted failure", "http_status": status}


def test_waha_wrong_api_key_is_permanent(waha: FakeWaha):
    with pytest.raises(PermanentError):
        WahaGateway(waha.url, "wrong", None, timeout=2).send(TEXT_ONLY, window_open=True)

    assert waha.accepted == []


def test_waha_read_timeout_is_unconfirmed_and_refused_is_transient(waha: FakeWaha):
    waha.delay_next(3)
    with pytest.raises(Unconfirmed):
        WahaGateway(waha.url, waha.api_key, None, timeout=0.5).send(TEXT_ONLY, window_open=True)
    assert len(waha.accepted) == 1

    with pytest.raises(TransientError):
        WahaGateway(f"http://127.0.0.1:{free_port()}", None, None, timeout=2).send(
            TEXT_ONLY, window_open=True
        )


# Sandbox.


def test_sandbox_answers_like_the_cloud_api_without_any_request(monkeypatch, caplog):
    def no_http(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the sandbox made an HTTP request")

    monkeypatch.setattr(requests.Session, "request", no_http)
    sandbox = SandboxGateway()

    with caplog.at_level(logging.INFO, logger="integrations.whatsapp.sandbox"):
        text = sandbox.send(MESSAGE, window_open=True)
        template = sandbox.send(MESSAGE, window_open=False)
    with pytest.raises(BlockedWindow):
        sandbox.send(TEXT_ONLY, window_open=False)

    assert text.external_id == "sandbox.42"
    assert (text.type, template.type) == ("text", "template")
    assert text.request["to"] == "6281212345678"
    assert template.request["template"]["components"][0]["parameters"][0] == {"type": "text", "text": "Budi"}
    records = [r for r in caplog.records if r.name == "integrations.whatsapp.sandbox"]
    assert [(r.outbound_id, r.type) for r in records] == [(42, "text"), (42, "template")]  # type: ignore[attr-defined]
    for record in records:
        logged = record.getMessage() + repr(record.__dict__)
        assert "6281212345678" not in logged
        assert "Pesanan" not in logged


# Choosing the gateway from settings.


def test_gateway_for_builds_the_configured_gateway(cloud_api: FakeCloudApi):
    config = Settings(
        whatsapp_gateway="cloud",
        whatsapp_api_base=cloud_api.base_url,
        whatsapp_access_token=cloud_api.access_token,
        whatsapp_phone_number_id=cloud_api.phone_number_id,
    )

    gateway = gateway_for(config)

    assert isinstance(gateway, CloudApiGateway)
    assert gateway.send(MESSAGE, window_open=True).external_id.startswith("wamid.")
    assert isinstance(gateway_for(Settings(whatsapp_gateway="sandbox")), SandboxGateway)
    assert isinstance(
        gateway_for(Settings(whatsapp_gateway="waha", waha_url="http://127.0.0.1:1")), WahaGateway
    )


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"whatsapp_gateway": "cloud", "whatsapp_phone_number_id": "1"}, "WHATSAPP_ACCESS_TOKEN"),
        ({"whatsapp_gateway": "cloud", "whatsapp_access_token": "t"}, "WHATSAPP_PHONE_NUMBER_ID"),
        ({"whatsapp_gateway": "waha"}, "WAHA_URL"),
        ({"whatsapp_gateway": "twilio"}, "WHATSAPP_GATEWAY"),
    ],
)
def test_gateway_for_names_the_missing_setting(overrides: dict[str, str], named: str):
    config = Settings(
        **{"whatsapp_access_token": None, "whatsapp_phone_number_id": None, "waha_url": None, **overrides}
    )

    with pytest.raises(ValueError, match=named):
        gateway_for(config)


# Our files: streamed to the Cloud API, linked (or, without a link, base64) for WAHA.


def _attachment(data: bytes, url: str | None = None) -> Attachment:
    def chunks():
        for at in range(0, len(data), 100_000):
            yield data[at : at + 100_000]

    return Attachment("video/mp4", "v.mp4", len(data), lambda: ChunkReader(chunks(), len(data)), url=url)


def test_cloud_upload_streams_the_stored_file_and_meta_keeps_it_whole(
    cloud: CloudApiGateway, cloud_api: FakeCloudApi
):
    data = bytes(range(256)) * 20_000 + b"end"  # 5 MB, not a whole number of chunks
    media_id = cloud.upload_media(_attachment(data))

    assert cloud_api.uploads == [(cloud_api.phone_number_id, media_id)]
    assert cloud_api.media[media_id].data == data
    assert cloud_api.media[media_id].mime_type == "video/mp4"


def _video(attachment: Attachment) -> OutgoingMessage:
    body = {"type": "video", "video": {"id": "ours", "caption": "Cara pakai"}}
    return OutgoingMessage(7, "+6281212345678", "", body=body, attachment=attachment)


def test_waha_is_given_our_file_as_its_link_when_there_is_one(waha: FakeWaha):
    gateway = WahaGateway(waha.url, waha.api_key, None, timeout=2)
    link = "https://crm.example.id/f/ours?expires=1&signature=x"

    gateway.send(_video(_attachment(b"video bytes", url=link)), window_open=True)

    [(endpoint, body)] = waha.sent()
    assert endpoint == "sendVideo"
    assert body["file"] == {"mimetype": "video/mp4", "url": link, "filename": "v.mp4"}
    assert body["caption"] == "Cara pakai"


def test_waha_is_given_our_file_as_base64_without_a_link_in_a_body_of_known_length(waha: FakeWaha):
    gateway = WahaGateway(waha.url, waha.api_key, None, timeout=2)
    data = bytes(range(256)) * 1000 + b"xy"

    sent = gateway.send(_video(_attachment(data)), window_open=True)

    [(_, body)] = waha.sent()
    assert waha.files_received == [data]  # WAHA's base64 of the file, decoded: the file itself
    assert "url" not in body["file"] and body["caption"] == "Cara pakai"
    [request] = waha.requests
    assert "transfer-encoding" not in request["headers"]  # a Content-Length, not chunked
    assert sent.request["file"]["data"] == f"<{4 * -(-len(data) // 3)} base64 characters>"  # not kept
    assert sent.warning is None


def test_waha_unable_to_fetch_our_link_gets_the_same_message_once_more_as_base64():
    data = bytes(range(256)) * 3000 + b"z"
    with FakeWaha(fetch_files=True) as waha:
        gateway = WahaGateway(waha.url, waha.api_key, None, timeout=5)
        closed = f"http://127.0.0.1:{free_port()}/f/ours?expires=1&signature=x"  # PUBLIC_URL unreachable

        sent = gateway.send(_video(_attachment(data, url=closed)), window_open=True)

        assert len(waha.requests) == 2  # the link, refused with WAHA's 500; then the file inline
        assert waha.requests[0]["body"]["file"]["url"] == closed
        assert len(waha.accepted) == 1 and waha.files_received == [data]  # the customer has it once
    assert "url" not in sent.request["file"] and sent.request["file"]["data"].endswith("base64 characters>")
    assert sent.warning is not None and "ECONNREFUSED" in sent.warning["message"]
    assert "PUBLIC_URL" in sent.warning["message"]


def test_waha_slow_to_fail_fetching_our_link_is_waited_for_past_our_own_timeout():
    import http.server
    import threading
    import time

    class Slow(http.server.BaseHTTPRequestHandler):  # PUBLIC_URL behind a proxy that gives up
        def do_GET(self) -> None:
            time.sleep(2)
            self.send_error(503)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    data = b"video bytes" * 100
    try:
        with FakeWaha(fetch_files=True) as waha:
            gateway = WahaGateway(waha.url, waha.api_key, None, timeout=1)  # shorter than WAHA's wait
            link = f"http://127.0.0.1:{server.server_port}/f/ours?expires=1&signature=x"

            sent = gateway.send(_video(_attachment(data, url=link)), window_open=True)

            assert len(waha.accepted) == 1 and waha.files_received == [data]  # not "unconfirmed"
    finally:
        server.shutdown()
    assert sent.warning is not None and "503" in sent.warning["message"]


def test_waha_given_a_file_the_store_cannot_read_whole_sent_nothing_and_may_be_tried_again(waha: FakeWaha):
    gateway = WahaGateway(waha.url, waha.api_key, None, timeout=2)
    data = bytes(range(256)) * 4000
    short = Attachment(
        "video/mp4", "v.mp4", len(data) + 10, lambda: ChunkReader(iter([data]), len(data) + 10)
    )

    with pytest.raises(TransientError, match="reading the stored file failed"):
        gateway.send(_video(short), window_open=True)
    assert waha.accepted == []  # WAHA got a body cut short of its Content-Length: nothing sent


def test_waha_fetching_our_link_is_not_tried_again_after_any_other_error(waha: FakeWaha):
    gateway = WahaGateway(waha.url, waha.api_key, None, timeout=2)
    link = "https://crm.example.id/f/ours?expires=1&signature=x"
    waha.fail_next(500)  # WAHA's own error, nothing that says the link could not be fetched
    with pytest.raises(TransientError):
        gateway.send(_video(_attachment(b"video bytes", url=link)), window_open=True)
    waha.accept_then_fail_next(502)  # a proxy's: it may well have been sent
    with pytest.raises(Unconfirmed):
        gateway.send(_video(_attachment(b"video bytes", url=link)), window_open=True)
    assert [r["body"]["file"]["url"] for r in waha.requests] == [link, link]  # never as base64


def test_a_download_cut_off_midway_may_be_tried_again_and_leaves_no_file(tmp_path, monkeypatch):
    import http.server
    import tempfile
    import threading

    from integrations.whatsapp.media import MediaSource, fetch_waha

    class CutOff(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "video/mp4")
            self.send_header("Content-Length", str(4 * 1024 * 1024))
            self.end_headers()
            self.wfile.write(b"x" * 300_000)  # then the connection is closed

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), CutOff)
    threading.Thread(target=server.handle_request, daemon=True).start()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    source = MediaSource("waha", "http://127.0.0.1", {}, frozenset({"127.0.0.1"}), 10**8, 5)
    try:
        with pytest.raises(TransientError, match="broke off"):
            fetch_waha(source, f"http://127.0.0.1:{server.server_port}/api/files/v.mp4", None)
    finally:
        server.server_close()
    assert list(tmp_path.iterdir()) == []
