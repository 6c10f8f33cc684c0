"""Closed by default: a webhook whose secret is unset refuses every request with 503 naming the
setting and stores nothing, unless DEVELOPMENT_MODE is on; with its secret set it takes a
correctly signed request. No worker: these tests look at what is answered and stored."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from models import InboxEvent
from models.db import session_scope
from testkit import samples

BUDI = "6281212345678"
SECRETS = {
    "whatsapp_app_secret": "app-secret",
    "waha_hmac_key": "waha-key",
    "order_webhook_secret": "order-secret",
}


@pytest.fixture(autouse=True)
def published(monkeypatch) -> list[int]:
    """The inbox ids the producers publish; captured so that no worker is needed."""
    import producers.inbox

    ids: list[int] = []
    monkeypatch.setattr(producers.inbox, "enqueue", ids.extend)
    return ids


def stored() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(InboxEvent))


def changed_number() -> dict:
    """The forgery of the review: a customer's phone moved to another number."""
    moved = samples.message(
        BUDI, "system", system={"type": "user_changed_number", "body": "changed", "wa_id": "6281299998888"}
    )
    return samples.envelope(messages=[moved], contacts=[samples.profile(BUDI, "Budi")])


def whatsapp(secret: str | None) -> tuple[str, bytes, dict[str, str]]:
    return ("/webhooks/whatsapp", *samples.encode(changed_number(), secret))


def waha(secret: str | None) -> tuple[str, bytes, dict[str, str]]:
    envelope = samples.waha_label_chat("added", f"{BUDI}@c.us", "4", "Grade A")
    return ("/webhooks/waha", *samples.waha_encode(envelope, secret))


def orders(secret: str | None) -> tuple[str, bytes, dict[str, str]]:
    event = samples.order_event("order.created", total=150000, currency="IDR")
    return ("/webhooks/orders", *samples.encode(event, secret, header="X-Signature-256"))


WEBHOOKS = [
    pytest.param(whatsapp, "whatsapp_app_secret", 200, id="whatsapp"),
    pytest.param(waha, "waha_hmac_key", 200, id="waha"),
    pytest.param(orders, "order_webhook_secret", 202, id="orders"),
]


@pytest.mark.parametrize(("request_for", "setting", "accepted"), WEBHOOKS)
def test_a_webhook_without_its_secret_refuses_with_503_naming_it_and_stores_nothing(
    make_client, published, request_for, setting, accepted
):
    # The other two secrets are set: only this webhook's own secret decides.
    others = {name: value for name, value in SECRETS.items() if name != setting}
    client = make_client(development_mode=False, **others)
    for signed_with in (None, "a-guess"):
        path, body, headers = request_for(signed_with)
        answer = client.post(path, content=body, headers=headers)
        assert answer.status_code == 503, answer.text
        assert setting.upper() in answer.json()["error"], answer.json()
    assert stored() == 0
    assert published == []


@pytest.mark.parametrize(("request_for", "setting", "accepted"), WEBHOOKS)
def test_with_its_secret_set_a_webhook_takes_a_signed_request_and_refuses_an_unsigned_one(
    make_client, published, request_for, setting, accepted
):
    client = make_client(development_mode=False, **SECRETS)
    path, body, headers = request_for(None)
    assert client.post(path, content=body, headers=headers).status_code == 401
    assert stored() == 0

    path, body, headers = request_for(SECRETS[setting])
    answer = client.post(path, content=body, headers=headers)
    assert answer.status_code == accepted, answer.text
    assert stored() == 1
    assert len(published) == 1


@pytest.mark.parametrize(("request_for", "setting", "accepted"), WEBHOOKS)
def test_development_mode_takes_unsigned_requests(make_client, published, request_for, setting, accepted):
    client = make_client(development_mode=True)
    path, body, headers = request_for(None)
    assert client.post(path, content=body, headers=headers).status_code == accepted
    assert stored() == 1


def test_the_handshake_without_a_verify_token_refuses_with_503_naming_it(make_client):
    params = {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1158201444"}
    answer = make_client(development_mode=False).get("/webhooks/whatsapp", params=params)
    assert answer.status_code == 503, answer.text
    assert "WHATSAPP_VERIFY_TOKEN" in answer.json()["error"]
    assert "1158201444" not in answer.text

    # In development mode there is still no token to match: refused, never echoed.
    answer = make_client(development_mode=True).get("/webhooks/whatsapp", params=params)
    assert answer.status_code == 403
    assert "1158201444" not in answer.text

    client = make_client(development_mode=False, whatsapp_verify_token="let-me-in")
    answer = client.get("/webhooks/whatsapp", params={**params, "hub.verify_token": "let-me-in"})
    assert (answer.status_code, answer.text) == (200, "1158201444")


def warnings_in(output: str) -> list[dict]:
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if (line.get("level"), line.get("logger")) == ("WARNING", "producers.app")]


def test_development_mode_warns_once_at_start_naming_the_unset_secrets(make_client, capsys):
    capsys.readouterr()
    make_client(development_mode=True, whatsapp_app_secret="app-secret")
    [warning] = warnings_in(capsys.readouterr().out)
    assert "DEVELOPMENT_MODE" in warning["message"]
    for name in ("WHATSAPP_VERIFY_TOKEN", "WAHA_HMAC_KEY", "ORDER_WEBHOOK_SECRET"):
        assert name in warning["message"], warning
    assert "WHATSAPP_APP_SECRET" not in warning["message"]

    make_client(development_mode=True, whatsapp_verify_token="t", **SECRETS)
    assert warnings_in(capsys.readouterr().out) == []
