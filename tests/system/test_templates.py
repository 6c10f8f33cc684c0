"""Templates managed, not guessed: synced from the WABA through Graph paging, kept current by
Meta's status webhooks (a late one never undoes a newer one), and a paused template blocks an
order message visibly (``blocked_template``) instead of a send Meta refuses."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from models import MessageTemplate, OutboundMessage
from models.db import session_scope
from testkit import samples
from testkit.processes import wait_for

from .conftest import WABA_ID

pytestmark = pytest.mark.usefixtures("worker")


def template(name: str, status: str = "APPROVED", language: str = "id") -> dict:
    return {
        "id": str(abs(hash((name, language))) % 10**15),
        "name": name,
        "language": language,
        "status": status,
        "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Halo {{1}}, pesanan {{2}} sudah dibayar."}],
    }


def status_webhook(name: str, event: str, at: int, reason: str = "NONE") -> dict:
    value = {
        "event": event,
        "message_template_id": 1689556908129835,
        "message_template_name": name,
        "message_template_language": "id",
        "reason": reason,
    }
    change = {"field": "message_template_status_update", "value": value}
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": WABA_ID, "time": at, "changes": [change]}],
    }


def post(client, payload: dict) -> dict:
    body, headers = samples.encode(payload)
    answer = client.post("/webhooks/whatsapp", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def held(name: str) -> MessageTemplate | None:
    with session_scope() as session:
        return session.scalars(select(MessageTemplate).where(MessageTemplate.name == name)).first()


def test_the_template_list_is_synced_page_by_page_and_listed_with_its_status(
    client, admin_headers, cloud_api
):
    cloud_api.templates[WABA_ID] = [template(f"promo_{n:03}") for n in range(130)] + [
        template("order_paid", "REJECTED")
    ]
    assert client.post("/api/templates/sync", headers=admin_headers).status_code == 202
    wait_for(lambda: len(client.get("/api/templates", headers=admin_headers).json()) == 131, 60, "synced")
    listed = {t["name"]: t for t in client.get("/api/templates", headers=admin_headers).json()}
    assert listed["order_paid"]["status"] == "REJECTED"
    assert listed["promo_000"]["components"][0]["type"] == "BODY"
    pages = [r for r in cloud_api.requests if "message_templates" in r["path"]]
    assert len(pages) == 2  # 100 and 31: Graph's cursor paging followed to the end

    cloud_api.templates[WABA_ID] = [template("order_paid")]  # the promos were deleted at Meta
    client.post("/api/templates/sync", headers=admin_headers)
    wait_for(
        lambda: (held("promo_000") or MessageTemplate(status="")).status == "DELETED", 60, "deletions seen"
    )
    assert held("order_paid").status == "APPROVED"
    assert client.post("/api/templates/sync").status_code == 401


def test_status_webhooks_apply_in_time_order_and_a_replay_changes_nothing(client):
    first = post(client, status_webhook("order_shipped", "PAUSED", 1_800_000_100))
    assert first == {"accepted": 1, "duplicates": 0}
    assert post(client, status_webhook("order_shipped", "PAUSED", 1_800_000_100))["duplicates"] == 1
    wait_for(lambda: held("order_shipped") is not None, 60, "the status stored")
    post(client, status_webhook("order_shipped", "APPROVED", 1_800_000_050))  # older, arriving late
    post(client, status_webhook("order_shipped", "REJECTED", 1_800_000_200, reason="INVALID_FORMAT"))
    wait_for(lambda: held("order_shipped").status == "REJECTED", 60, "the newest status kept")
    assert held("order_shipped").reason == "INVALID_FORMAT"


def test_a_paused_template_blocks_the_order_message_visibly_and_nothing_is_sent(
    client, admin_headers, cloud_api
):
    post(client, status_webhook("order_created", "PAUSED", 1_800_000_000))
    wait_for(lambda: held("order_created") is not None, 60, "the pause stored")
    body, headers = samples.encode(
        samples.order_event("order.created", "SO-9001", total=150000, currency="IDR")
    )
    assert client.post("/webhooks/orders", content=body, headers=headers).status_code == 202

    def ended() -> str | None:
        with session_scope() as session:
            state = session.scalar(
                select(OutboundMessage.state).where(OutboundMessage.trigger == "order_created")
            )
        return state if state not in (None, "queued", "sending") else None

    assert wait_for(ended, 60, "the order message settled") == "blocked_template"
    assert [b for b in cloud_api.accepted if b.get("type") == "template"] == []
    view = client.get("/api/orders/SO-9001", headers=admin_headers).json()
    [message] = [m for m in view["messages"] if m["trigger"] == "order_created"]
    assert message["status"] == "blocked_template"
    assert "PAUSED" in message["error"]["message"]
