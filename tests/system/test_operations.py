"""Operations endpoints, the API's guard, and logs."""

from __future__ import annotations

import json
import logging

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
