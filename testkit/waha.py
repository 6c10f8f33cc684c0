"""Driving the system as WAHA does: post envelopes (``testkit.samples.waha_*``) and read what the
API then shows. Shared by the label, dashboard and broadcast tests."""

from __future__ import annotations

from typing import Any

from testkit import samples

BUDI_CHAT = "6281212345678@c.us"
BUDI_E164 = "+6281212345678"
T0 = 1_790_000_000_000  # ms, 2026-09-21: a fixed event time for tests that compare times


def post_waha(client: Any, envelope: dict, status: int = 200, hmac_key: str | None = None) -> dict:
    body, headers = samples.waha_encode(envelope, hmac_key)
    answer = client.post("/webhooks/waha", content=body, headers=headers)
    assert answer.status_code == status, answer.text
    return answer.json()


def label_contact(client: Any, chat_id: str, label_id: str, name: str, **envelope: Any) -> None:
    post_waha(client, samples.waha_label_chat("added", chat_id, label_id, name, **envelope))


def chat_of(index: int) -> str:
    """A distinct valid Indonesian mobile number per index, as a WAHA chat id."""
    return f"62812{5550000 + index:07d}@c.us"


def contacts_with(client: Any, headers: dict, label: str) -> list[dict]:
    answer = client.get("/api/contacts", params={"label": label, "limit": 500}, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


def contact_by_phone(client: Any, headers: dict, phone: str) -> dict:
    answer = client.get("/api/contacts", params={"phone": phone}, headers=headers)
    assert answer.status_code == 200, answer.text
    [contact] = answer.json()["items"]
    detail = client.get(f"/api/contacts/{contact['id']}", headers=headers)
    assert detail.status_code == 200, detail.text
    return detail.json()
