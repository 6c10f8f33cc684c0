"""Realistic WhatsApp Cloud API webhook payloads (docs/formats.md) and order-system events.

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
from pathlib import Path
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


def echoes(to: str, body: str, *, id: str | None = None, at: int | None = None, name: str = "Budi") -> dict:
    """An ``smb_message_echoes`` webhook (docs/formats-rich.md 6.1): staff typed ``body`` to
    ``to`` in the WhatsApp Business app."""
    echo = {
        "from": "6281100000000",
        "to": to,
        "id": id or wamid("echo"),
        "timestamp": str(at if at is not None else int(time.time())),
        "type": "text",
        "text": {"body": body},
    }
    document = envelope(contacts=[profile(to, name)])
    value = document["entry"][0]["changes"][0]["value"]
    value["message_echoes"] = [echo]
    document["entry"][0]["changes"][0]["field"] = "smb_message_echoes"
    return document


def reaction(wa_id: str, message_id: str, emoji: str, **extra: Any) -> dict:
    """A customer's reaction to ``message_id`` ("" takes it away)."""
    return message(wa_id, "reaction", reaction={"message_id": message_id, "emoji": emoji}, **extra)


def edit(wa_id: str, message_id: str, body: str, **extra: Any) -> dict:
    """A customer's edit of their text ``message_id`` (Meta's messages webhook, type ``edit``)."""
    edited = {"type": "text", "text": {"body": body}}
    return message(wa_id, "edit", edit={"original_message_id": message_id, "message": edited}, **extra)


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


# WAHA (docs/formats.md "WAHA"): the gateway of a WhatsApp Business app session.

WAHA_ME = {
    "id": "6281100000000@c.us",
    "pushName": "Toko",
    "lid": "38036297507060@lid",
    "jid": "6281100000000:73@s.whatsapp.net",
}


def waha_event_id() -> str:
    """``evt_`` + 26 lower-case characters, like WAHA's ULIDs."""
    return f"evt_{time.time_ns():016x}{next(_counter):010x}"


def waha_envelope(
    event: str,
    payload: dict,
    *,
    session: str = "default",
    at_ms: int | None = None,
    id: str | None = None,
    me: dict | None = None,
    metadata: dict | None = None,
    legacy: bool = False,
) -> dict:
    """A WAHA webhook envelope; ``legacy`` drops ``id`` and ``timestamp`` as WAHA 2024 did."""
    envelope: dict[str, Any] = {
        "id": id or waha_event_id(),
        "timestamp": at_ms if at_ms is not None else int(time.time() * 1000),
        "event": event,
        "session": session,
        "metadata": metadata or {},
        "me": me or WAHA_ME,
        "payload": payload,
        "engine": "NOWEB",
        "environment": {"version": "2026.1.5", "engine": "NOWEB", "tier": "PLUS", "browser": None},
    }
    if legacy:
        del envelope["id"], envelope["timestamp"]
    return envelope


def waha_label(label_id: str, name: str, color: int = 1) -> dict:
    return {"id": label_id, "name": name, "color": color, "colorHex": "#64c4ff"}


def waha_label_upsert(label_id: str, name: str, **envelope: Any) -> dict:
    return waha_envelope("label.upsert", waha_label(label_id, name), **envelope)


def waha_label_deleted(label_id: str, name: str, **envelope: Any) -> dict:
    return waha_envelope("label.deleted", waha_label(label_id, name), **envelope)


def waha_label_chat(
    action: str, chat_id: str, label_id: str, name: str | None = None, **envelope: Any
) -> dict:
    """``label.chat.added`` (``action="added"``) or ``label.chat.deleted``; ``label`` is null
    without ``name``, as WAHA sends it when its store does not know the label."""
    payload = {"labelId": label_id, "chatId": chat_id, "label": waha_label(label_id, name) if name else None}
    return waha_envelope(f"label.chat.{'added' if action == 'added' else 'deleted'}", payload, **envelope)


def waha_message(
    chat_id: str,
    body: str,
    *,
    id: str | None = None,
    at: int | None = None,
    name: str | None = None,
    **envelope: Any,
) -> dict:
    """An inbound ``message`` event (WAMessage) from ``chat_id``."""
    message_id = id or f"false_{chat_id}_{uuid.uuid4().hex[:20].upper()}"
    payload = {
        "id": message_id,
        "timestamp": at if at is not None else int(time.time()),
        "from": chat_id,
        "fromMe": False,
        "to": WAHA_ME["id"],
        "body": body,
        "hasMedia": False,
        "ack": 1,
        "ackName": "SERVER",
        "_data": {"notifyName": name} if name else {},
    }
    return waha_envelope("message", payload, **envelope)


def waha_message_any(
    chat_id: str,
    body: str,
    *,
    from_me: bool = True,
    id: str | None = None,
    at: int | None = None,
    source: str = "app",
    **envelope: Any,
) -> dict:
    """A ``message.any`` event: with ``from_me``, a message of the business's own account to
    ``chat_id`` (``source: "app"``: typed on the phone; ``"api"``: sent through WAHA), else the
    customer's message again, as ``message.any`` repeats every inbound one."""
    if not from_me:
        inbound = waha_message(chat_id, body, id=id, at=at, **envelope)
        return {**inbound, "event": "message.any"}
    message_id = id or f"true_{chat_id}_{uuid.uuid4().hex[:20].upper()}"
    payload = {
        "id": message_id,
        "timestamp": at if at is not None else int(time.time()),
        "from": WAHA_ME["id"],
        "fromMe": True,
        "source": source,
        "to": chat_id,
        "body": body,
        "hasMedia": False,
        "ack": 1,
        "ackName": "SERVER",
        "_data": {"key": {"remoteJid": chat_id.replace("@c.us", "@s.whatsapp.net"), "fromMe": True}},
    }
    return waha_envelope("message.any", payload, **envelope)


def waha_reaction(
    chat_id: str, message_id: str, emoji: str, *, at: int | None = None, **envelope: Any
) -> dict:
    """``message.reaction``: the customer of ``chat_id`` reacted to ``message_id`` ("" removes it)."""
    payload = {
        "id": f"false_{chat_id}_{uuid.uuid4().hex[:20].upper()}",
        "timestamp": at if at is not None else int(time.time()),
        "from": chat_id,
        "fromMe": False,
        "to": WAHA_ME["id"],
        "reaction": {"text": emoji, "messageId": message_id},
    }
    return waha_envelope("message.reaction", payload, **envelope)


def waha_edited(chat_id: str, message_id: str, body: str, *, at: int | None = None, **envelope: Any) -> dict:
    """``message.edited``: the customer of ``chat_id`` changed ``message_id`` to read ``body``."""
    payload = {
        "id": f"false_{chat_id}_{uuid.uuid4().hex[:20].upper()}",
        "timestamp": at if at is not None else int(time.time()),
        "from": chat_id,
        "fromMe": False,
        "to": WAHA_ME["id"],
        "body": body,
        "editedMessageId": message_id,
        "hasMedia": False,
    }
    return waha_envelope("message.edited", payload, **envelope)


def waha_ack(message_id: str, ack: int, to: str, **envelope: Any) -> dict:
    names = {-1: "ERROR", 0: "PENDING", 1: "SERVER", 2: "DEVICE", 3: "READ", 4: "PLAYED"}
    payload = {
        "id": message_id,
        "from": WAHA_ME["id"],
        "to": to,
        "fromMe": True,
        "ack": ack,
        "ackName": names[ack],
    }
    return waha_envelope("message.ack", payload, **envelope)


def waha_encode(payload: dict | list, hmac_key: str | None = None) -> tuple[bytes, dict[str, str]]:
    """The body and headers WAHA would POST: ``X-Webhook-Hmac`` = hex HMAC-SHA512 of the body."""
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "WAHA/2026.1.5"}
    if hmac_key:
        headers["X-Webhook-Hmac"] = hmac.new(hmac_key.encode(), body, hashlib.sha512).hexdigest()
        headers["X-Webhook-Hmac-Algorithm"] = "sha512"
    return body, headers


def with_trigger(tmp_path: Path, trigger: str, table: str) -> Path:
    """The shipped messages file with one trigger's table replaced."""
    from settings import settings  # here: importing settings fixes them, and callers set the env first

    document = settings.order_messages_file.read_text()
    start = document.index(f"[{trigger}]")
    end = document.find("\n[", start + 1)
    replaced = document[:start] + table + (document[end:] if end != -1 else "\n")
    path = tmp_path / "messages.toml"
    path.write_text(replaced)
    return path
