"""The Cloud API producer: handshake, signatures, bad input, the inbox. No worker involved:
these tests check what is (and is not) stored and answered."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from models import InboxEvent
from models.db import session_scope
from testkit import samples

SECRET = "app-secret"


@pytest.fixture(autouse=True)
def published(monkeypatch) -> list[int]:
    """The inbox ids the producer publishes; captured here so that no worker races these tests."""
    import producers.inbox

    ids: list[int] = []
    monkeypatch.setattr(producers.inbox, "enqueue", ids.extend)
    return ids


def inbox() -> list[InboxEvent]:
    with session_scope() as session:
        return list(session.scalars(select(InboxEvent).order_by(InboxEvent.id)))


def post(client, payload, secret=None, **headers):
    body, signed = samples.encode(payload, secret)
    return client.post("/webhooks/whatsapp", content=body, headers={**signed, **headers})


def test_verification_handshake_echoes_the_challenge(make_client):
    client = make_client(whatsapp_verify_token="let-me-in")
    params = {"hub.mode": "subscribe", "hub.verify_token": "let-me-in", "hub.challenge": "1158201444"}
    answer = client.get("/webhooks/whatsapp", params=params)
    assert answer.status_code == 200
    assert answer.text == "1158201444"

    wrong = client.get("/webhooks/whatsapp", params={**params, "hub.verify_token": "guess"})
    assert wrong.status_code == 403


def test_signed_webhook_is_accepted_stored_and_published(make_client, published):
    client = make_client(whatsapp_app_secret=SECRET)
    answer = post(client, samples.inbound_text("6281212345678", "Budi", "Halo"), SECRET)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": 1, "duplicates": 0}
    [event] = inbox()
    assert (event.source, event.kind, event.state) == ("whatsapp", "message", "pending")
    assert published == [event.id]
    assert event.payload["message"]["text"]["body"] == "Halo"
    assert event.payload["contact"]["profile"]["name"] == "Budi"


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Hub-Signature-256": "sha256=" + "0" * 64}, {"X-Hub-Signature-256": "garbage"}],
    ids=["missing", "wrong", "malformed"],
)
def test_bad_signature_is_refused_and_stores_nothing(make_client, headers):
    client = make_client(whatsapp_app_secret=SECRET)
    body, _ = samples.encode(samples.inbound_text("6281212345678", "Budi", "Halo"))
    answer = client.post(
        "/webhooks/whatsapp", content=body, headers={"Content-Type": "application/json", **headers}
    )
    assert answer.status_code == 401
    assert "X-Hub-Signature-256" in answer.json()["error"]
    assert inbox() == []


def test_signature_is_over_the_raw_bytes(make_client):
    """Re-serialising the JSON would change the bytes; the check must use them as sent."""
    client = make_client(whatsapp_app_secret=SECRET)
    payload = samples.inbound_text("6281212345678", "Budi", "Harga berapa? 🙏")
    body, headers = samples.encode(payload, SECRET)
    spaced = json.dumps(payload, indent=2).encode()
    assert client.post("/webhooks/whatsapp", content=spaced, headers=headers).status_code == 401
    assert client.post("/webhooks/whatsapp", content=body, headers=headers).status_code == 200


def test_not_json_is_400(client):
    answer = client.post(
        "/webhooks/whatsapp", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400
    assert "not JSON" in answer.json()["error"]
    assert inbox() == []


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p.update(object="page"), "object"),
        (lambda p: p.pop("entry"), "entry"),
        (lambda p: p["entry"][0]["changes"][0]["value"]["messages"][0].pop("id"), "messages[0].id"),
        (
            lambda p: p["entry"][0]["changes"][0]["value"]["messages"][0].update(timestamp="yesterday"),
            "timestamp",
        ),
        (lambda p: p["entry"][0]["changes"][0]["value"]["messages"][0].pop("from"), "messages[0]"),
        (
            lambda p: p["entry"][0]["changes"][0]["value"]["messages"][0].update(timestamp="999999999999"),
            "timestamp",
        ),
        (lambda p: p["entry"][0]["changes"][0]["value"].update(errors=["oops"]), "errors[0]"),
    ],
    ids=[
        "wrong-object",
        "no-entry",
        "message-without-id",
        "bad-timestamp",
        "no-sender",
        "year-33658",
        "errors",
    ],
)
def test_wrong_shape_is_400_naming_the_field(client, mutate, field):
    payload = samples.inbound_text("6281212345678", "Budi", "Halo")
    mutate(payload)
    answer = post(client, payload)
    assert answer.status_code == 400
    assert field in answer.json()["field"]
    assert inbox() == []


def test_one_bad_message_in_a_batch_rejects_the_whole_batch(client):
    good = samples.text("6281212345678", "Halo")
    bad = samples.text("6285711112222", "Hai")
    del bad["id"]
    answer = post(client, samples.envelope(messages=[good, bad]))
    assert answer.status_code == 400
    assert answer.json()["field"] == "entry[0].changes[0].value.messages[1].id"
    assert inbox() == [], "a rejected request must change nothing"


def test_nul_character_is_400_not_a_retried_503(client):
    answer = post(client, samples.inbound_text("6281212345678", "Budi", "Halo\x00"))
    assert answer.status_code == 400
    assert "NUL" in answer.json()["error"]
    assert inbox() == []


def test_body_over_the_limit_is_413(make_client):
    client = make_client(max_body_bytes=1024)
    payload = samples.inbound_text("6281212345678", "Budi", "x" * 2000)
    assert post(client, payload).status_code == 413
    assert inbox() == []


def test_batch_stores_every_message_and_status(client):
    payload = samples.envelope(
        messages=[samples.text("6281212345678", "Halo"), samples.text("6285711112222", "Permisi")],
        statuses=[samples.status("wamid.out.1", "sent", "6281212345678")],
        contacts=[samples.profile("6281212345678", "Budi"), samples.profile("6285711112222", "Siti")],
    )
    assert post(client, payload).json() == {"accepted": 3, "duplicates": 0}
    events = inbox()
    assert [e.kind for e in events] == ["message", "message", "status"]
    assert [e.payload.get("contact", {}).get("profile", {}).get("name") for e in events[:2]] == [
        "Budi",
        "Siti",
    ]


def test_replay_is_acknowledged_and_not_stored_or_published_again(client, published):
    payload = samples.inbound_text("6281212345678", "Budi", "Halo")
    assert post(client, payload).json() == {"accepted": 1, "duplicates": 0}
    assert post(client, payload).json() == {"accepted": 0, "duplicates": 1}
    assert len(inbox()) == 1
    assert len(published) == 1


def test_statuses_are_unique_per_message_and_status(client):
    sent = samples.status("wamid.out.7", "sent", "6281212345678")
    delivered = samples.status("wamid.out.7", "delivered", "6281212345678")
    post(client, samples.envelope(statuses=[sent]))
    post(client, samples.envelope(statuses=[sent, delivered]))
    assert sorted(e.dedupe_key for e in inbox()) == ["wamid.out.7:delivered", "wamid.out.7:sent"]


def test_other_webhook_fields_are_acknowledged_without_storing(client):
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "account_update", "value": {"event": "VERIFIED"}}]}],
    }
    assert post(client, payload).status_code == 200
    assert inbox() == []


def test_database_down_answers_503_so_meta_retries(make_client, monkeypatch):
    from sqlalchemy.exc import OperationalError

    import producers.inbox

    def refuse(*_a, **_k):
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(producers.inbox, "session_scope", refuse)
    answer = post(make_client(), samples.inbound_text("6281212345678", "Budi", "Halo"))
    assert answer.status_code == 503
    assert "database" in answer.json()["error"]


def test_rejections_are_counted_in_metrics(make_client):
    client = make_client(whatsapp_app_secret=SECRET)
    before = _metric(client, 'wacrm_events_rejected_total{reason="signature",source="whatsapp"}')
    post(client, samples.inbound_text("6281212345678", "Budi", "Halo"))
    assert _metric(client, 'wacrm_events_rejected_total{reason="signature",source="whatsapp"}') == before + 1


def _metric(client, line_prefix: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(line_prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_inbox_count_matches_accepted(client):
    for i in range(5):
        post(client, samples.inbound_text("6281212345678", "Budi", f"pesan {i}"))
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(InboxEvent)) == 5
