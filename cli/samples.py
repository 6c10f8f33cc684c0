"""Realistic WhatsApp Cloud API webhook payloads (shared/spec/formats.md) and order-system events.

Used by ``demo`` to show the system working, and by the tests and benchmarks to drive it.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

PHONE_NUMBER_ID = "106540352242922"
_counter = itertools.count(1)


def wamid(prefix: str = "in") -> str:
    return f"wamid.{prefix}.{time.time_ns():x}.{next(_counter)}"


def envelope(*, messages: list[dict] = (), statuses: list[dict] = (), contacts: list[dict] = ()) -> dict:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "6281100000000", "phone_number_id": PHONE_NUMBER_ID},
    }
    if contacts:
        value["contacts"] = list(contacts)
    if messages:
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = list(statuses)
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
    }


def profile(wa_id: str, name: str, user_id: str | None = None) -> dict:
    contact: dict[str, Any] = {"profile": {"name": name}, "wa_id": wa_id}
    if user_id:
        contact["user_id"] = user_id
    return contact


def message(
    wa_id: str, kind: str = "text", *, id: str | None = None, at: int | None = None, **body: Any
) -> dict:
    """A message of any type; ``body`` is the type's own object (``text={"body": ...}`` etc.)."""
    result: dict[str, Any] = {
        "from": wa_id,
        "id": id or wamid(),
        "timestamp": str(at if at is not None else int(time.time())),
        "type": kind,
    }
    result.update(body)
    return result


def text(wa_id: str, body: str, **extra: Any) -> dict:
    return message(wa_id, "text", text={"body": body}, **extra)


def status(
    external_id: str,
    state: str,
    wa_id: str,
    *,
    at: int | None = None,
    errors: list | None = None,
    callback: str | None = None,
) -> dict:
    result: dict[str, Any] = {
        "id": external_id,
        "status": state,
        "timestamp": str(at if at is not None else int(time.time())),
        "recipient_id": wa_id,
    }
    if errors:
        result["errors"] = errors
    if callback:
        result["biz_opaque_callback_data"] = callback
    return result


def inbound_text(wa_id: str, name: str, body: str, **extra: Any) -> dict:
    """The commonest webhook: one text from one customer."""
    return envelope(messages=[text(wa_id, body, **extra)], contacts=[profile(wa_id, name)])


def ad_referral(source_id: str = "120210000000000001") -> dict:
    return {
        "source_url": "https://fb.me/promo",
        "source_id": source_id,
        "source_type": "ad",
        "headline": "Promo akhir tahun",
        "body": "Diskon 20%",
        "media_type": "image",
        "image_url": "https://example.invalid/ad.jpg",
        "ctwa_clid": "ARAkLk3x",
    }


def order_event(
    event_type: str,
    order_id: str | None = "SO-1001",
    *,
    phone: str = "0812-1234-5678",
    name: str | None = "Budi Santoso",
    contact_id: str | None = "C-42",
    event_id: str | None = None,
    occurred_at: str | None = None,
    **order: Any,
) -> dict:
    """An order-system event as in the interface ("Order-system events")."""
    event: dict[str, Any] = {
        "id": event_id or f"evt-{uuid.uuid4().hex[:12]}",
        "type": event_type,
        "occurred_at": occurred_at or datetime.now(UTC).isoformat(),
        "contact": {"id": contact_id, "name": name, "phone": phone},
    }
    if event_type.startswith("order."):
        event["order"] = {"id": order_id, **order}
    return event


def encode(
    payload: dict | list, secret: str | None = None, header: str = "X-Hub-Signature-256"
) -> tuple[bytes, dict[str, str]]:
    """The body and headers to POST, signed like Meta (or, naming ``header``, the order system)
    signs when a secret is given."""
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if secret:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        headers[header] = f"sha256={digest}"
    return body, headers
