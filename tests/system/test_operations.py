"""Operations endpoints, the API's guard, and logs."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable

from fastapi.testclient import TestClient
from httpx import Response

from models.db import POOL_MAX_OVERFLOW, POOL_SIZE, get_engine
from observability.logs import MaskingJsonFormatter
from testkit import samples


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_is_ready_with_database_and_broker(client):
    answer = client.get("/readyz")
    assert answer.status_code == 200, answer.text


def test_readyz_names_the_broker_when_it_is_down(client, monkeypatch):
    # Celery reads the write URL from this variable before its own configuration.
    monkeypatch.setenv("CELERY_BROKER_WRITE_URL", "redis://127.0.0.1:1/0")
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert list(answer.json()["down"]) == ["broker"]


def test_api_is_closed_without_admin_token(make_client):
    answer = make_client(admin_token=None).get("/api/contacts")
    assert answer.status_code == 503
    assert "ADMIN_TOKEN" in answer.json()["detail"]


def test_api_refuses_a_wrong_token(client):
    assert client.get("/api/contacts", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/api/contacts").status_code == 401


def test_phone_filter_accepts_any_common_form_and_rejects_garbage(client, admin_headers):
    assert client.get("/api/contacts", params={"phone": "0812-1234-5678"}, headers=admin_headers).json() == {
        "items": [],
        "next_cursor": None,
    }
    answer = client.get("/api/contacts", params={"phone": "abc"}, headers=admin_headers)
    assert answer.status_code == 422
    assert "phone" in answer.json()["detail"]


def test_openapi_documents_webhooks_and_api(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/webhooks/whatsapp", "/api/contacts", "/api/contacts/{contact_id}", "/readyz"} <= set(paths)


def test_metrics_count_accepted_events(client):
    def accepted() -> float:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith('wacrm_events_accepted_total{kind="message",source="whatsapp"}'):
                return float(line.split()[-1])
        return 0.0

    before = accepted()
    body, headers = samples.encode(samples.inbound_text("6281212345678", "Budi", "Halo"))
    client.post("/webhooks/whatsapp", content=body, headers=headers)
    assert accepted() == before + 1


def test_logs_are_json_and_mask_phone_numbers():
    formatter = MaskingJsonFormatter("{levelname}{message}", style="{")
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "message from %s", ("6281212345678",), None)
    line = json.loads(formatter.format(record))
    assert line["message"] == "message from 628******5678"


def test_a_signed_links_signature_never_reaches_the_log():
    formatter = MaskingJsonFormatter("{levelname}{message}", style="{")
    access = '127.0.0.1 - "GET /f/abc?expires=1765000000&signature=Zm9vYmFyYmF6cXV4 HTTP/1.1" 200'
    line = json.loads(formatter.format(logging.LogRecord("t", logging.INFO, __file__, 1, access, (), None)))
    assert "Zm9vYmFyYmF6cXV4" not in line["message"] and "signature=hidden HTTP/1.1" in line["message"]


def test_readyz_tells_anyone_what_is_down_and_only_the_admin_why(client, admin_headers, monkeypatch):
    monkeypatch.setenv("CELERY_BROKER_WRITE_URL", "redis://127.0.0.1:1/0")
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        anonymous = client.get("/readyz", headers=headers)
        assert anonymous.status_code == 503
        assert anonymous.json() == {"status": "unavailable", "down": ["broker"]}  # no error text
    admin = client.get("/readyz", headers=admin_headers)
    assert admin.status_code == 503 and admin.json()["down"] == ["broker"]
    assert "127.0.0.1:1" in admin.json()["details"]["broker"]  # what the operator needs to fix it


def test_every_pooled_connection_busy_answers_503_not_500(make_client, admin_headers):
    """The pool's wait runs out (sqlalchemy's TimeoutError): like a database outage, "retry
    later", for the webhook (the sender retries) and for the API alike."""
    secret = "pool-test-app-secret"  # a signed webhook: refused for nothing but the pool
    engine = get_engine()
    held = [engine.connect() for _ in range(POOL_SIZE + POOL_MAX_OVERFLOW)]
    answers: dict[str, int | str] = {}

    def call(name: str, request: Callable[[TestClient], Response]) -> None:
        try:
            answers[name] = request(make_client(whatsapp_app_secret=secret)).status_code
        except Exception as exc:  # the test client raises what the app did not handle (a 500)
            answers[name] = f"500, {type(exc).__name__}"

    body, headers = samples.encode(samples.inbound_text("6281212345670", "Budi", "Halo"), secret)
    requests = {
        "webhook": lambda c: c.post("/webhooks/whatsapp", content=body, headers=headers),
        "api": lambda c: c.get("/api/contacts", headers=admin_headers),
    }
    try:
        callers = [threading.Thread(target=call, args=item) for item in requests.items()]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(120)
    finally:
        for connection in held:
            connection.close()
    assert answers == {"webhook": 503, "api": 503}
    # Connections free again: the same webhook is taken.
    again = make_client(whatsapp_app_secret=secret).post("/webhooks/whatsapp", content=body, headers=headers)
    assert again.status_code == 200
