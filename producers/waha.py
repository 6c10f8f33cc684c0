"""``/webhooks/waha``: events from a WAHA gateway session (docs/formats.md "WAHA").

WAHA drives a WhatsApp Business *app* account, so it reports what only the app knows: the label
catalogue (``label.upsert``, ``label.deleted``) and which chat has which label
(``label.chat.added``, ``label.chat.deleted``); it also reports inbound messages (``message``),
every message of the chat our own included (``message.any``: staff replies typed on the phone),
reactions (``message.reaction``), edits (``message.edited``) and receipts of messages sent
through it (``message.ack``). Each accepted event becomes one inbox
row, unique on the envelope's ``id`` (WAHA retries with the same id); envelopes of WAHA versions
that sent no ``id`` are keyed by a hash of their canonical JSON, so an identical retry is still a
replay. Other events (``session.status``, ``presence.update``, ...) are acknowledged and ignored, so
a session that subscribes to more than we need does not make WAHA retry forever.

The event time (kept in the stored payload as ``occurred_at``) is the envelope's ``timestamp``
(ms), else the message's own ``timestamp`` (s), else WAHA's ``X-Webhook-Timestamp`` header (ms),
else the time of arrival: the label rules need it to put events back in order.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from models import Contact, ContactIdentity, DeliveryStatus, InboxEvent, Label, Message
from models.inbox import UNKNOWN_CHANNEL
from models.types import INTEGER_RANGE, room
from producers import channels
from producers.inbox import NewEvent, store
from producers.rejections import Rejected
from producers.security import parse_json, read_body, verify_signature
from settings import Settings

log = logging.getLogger(__name__)
router = APIRouter(tags=["webhooks"])

LABEL_EVENTS = ("label.upsert", "label.deleted", "label.chat.added", "label.chat.deleted")
MESSAGE_EVENTS = ("message", "message.ack", "message.any", "message.reaction", "message.edited")
# What the columns a value lands in hold, so that an accepted event can always be stored.
SESSION = room(Label.session)
ENVELOPE_ID = room(InboxEvent.dedupe_key)
LABEL_ID = room(Label.external_id)
LABEL_NAME = room(Label.name)
CHAT_ID = room(ContactIdentity.value)  # a chat id becomes a phone, wa_id or LID identity
MESSAGE_ID = room(Message.external_id)
ACK_ID = min(room(DeliveryStatus.external_id), room(Message.external_id))
# What each accepted event's payload must carry: of which kind ("id" = a string or a number,
# "text" = a string) and at most how long.
_REQUIRED: dict[str, tuple[tuple[str, str, int], ...]] = {
    "label.upsert": (("id", "id", LABEL_ID), ("name", "text", LABEL_NAME)),
    "label.deleted": (("id", "id", LABEL_ID),),
    "label.chat.added": (("labelId", "id", LABEL_ID), ("chatId", "text", CHAT_ID)),
    "label.chat.deleted": (("labelId", "id", LABEL_ID), ("chatId", "text", CHAT_ID)),
    "message": (("id", "text", MESSAGE_ID), ("from", "text", CHAT_ID), ("timestamp", "epoch", 0)),
    "message.ack": (("id", "text", ACK_ID), ("ack", "int", 0)),
    # Every message of the chat, our own too: staff replies typed on the phone (docs/echoes.md).
    "message.any": (("id", "text", MESSAGE_ID), ("from", "text", CHAT_ID), ("timestamp", "epoch", 0)),
    "message.reaction": (("id", "text", MESSAGE_ID), ("from", "text", CHAT_ID)),
    "message.edited": (("id", "text", MESSAGE_ID), ("editedMessageId", "text", MESSAGE_ID)),
}
_MESSAGES = ("message", "message.any")
_MAX_EPOCH_MS = 253402300799999  # 9999-12-31
# X-Webhook-Timestamp, used only when it is plain ASCII digits ("²".isdigit() is true, int() fails).
_MS_DIGITS = re.compile(r"[0-9]{1,15}")
# Names from the request that go into a log line are cut to this (an unsigned sender could
# otherwise write megabytes per line).
_LOGGED_NAME_CHARS = 200


@router.post("/webhooks/waha")
async def receive(request: Request) -> JSONResponse:
    settings: Settings = request.app.state.settings
    body = await read_body(request, settings.max_body_bytes)
    signature = request.headers.get("x-webhook-hmac")
    known = await channels.known()
    route = None
    if not known.by_session:
        # One session, as before channels: the settings channel takes everything.
        verify_signature(
            settings.waha_hmac_key,
            body,
            signature,
            header="X-Webhook-Hmac",
            setting="WAHA_HMAC_KEY",
            development_mode=settings.development_mode,
            algorithm="sha512",
        )
        document = parse_json(body)
    else:
        document = parse_json(body)
        session = document.get("session") if isinstance(document, dict) else None
        route = channels.waha_route(known, session, settings)
        channels.verify(
            [route],
            [settings.waha_hmac_key, *(r.secret for r in known.by_session.values())],
            body,
            signature,
            header="X-Webhook-Hmac",
            development_mode=settings.development_mode,
            algorithm="sha512",
        )
    event = validate(document, request.headers.get("x-webhook-timestamp"))
    if event is None:
        log.info("ignored WAHA event", extra={"event": document["event"][:_LOGGED_NAME_CHARS]})
        return JSONResponse({"accepted": 0, "duplicates": 0, "ignored": 1})
    if route is not None and not route.accepted:
        event = replace(event, state=UNKNOWN_CHANNEL)
    elif route is not None and route.channel_id is not None:
        event = replace(event, payload={**event.payload, "channel_id": route.channel_id})
    stored = await store([event])
    return JSONResponse(stored.answer())


def validate(document: Any, header_timestamp: str | None = None) -> NewEvent | None:
    """The inbox event for a WAHA envelope; None for an event we do not handle; 400 if malformed."""
    if not isinstance(document, dict):
        raise _malformed("body", "a WAHA webhook is a JSON object (the event envelope)")
    event = document.get("event")
    if not isinstance(event, str) or not event:
        raise _malformed("event", "'event' (the WAHA event name) is required")
    _string(document, "session", "session", required=True, limit=SESSION)
    envelope_id = _string(document, "id", "id", limit=ENVELOPE_ID)
    for key in ("me", "metadata"):
        if document.get(key) is not None and not isinstance(document[key], dict):
            raise _malformed(key, f"'{key}' must be an object")
    at = _epoch_ms(document.get("timestamp"), "timestamp")
    if event not in _REQUIRED:
        return None
    payload = document.get("payload")
    if not isinstance(payload, dict):
        raise _malformed("payload", f"'payload' (an object) is required on {event}")
    for key, kind, limit in _REQUIRED[event]:
        _check(payload, key, kind, limit)
    label = payload.get("label")
    if event.startswith("label.chat.") and label is not None and not isinstance(label, dict):
        raise _malformed("payload.label", "'payload.label' must be an object or null")
    if event == "label.upsert":
        _check_color(payload, "payload.color")
    elif isinstance(label, dict):
        _check_color(label, "payload.label.color")
    if event in _MESSAGES:
        _check_message(payload)
    if event == "message.reaction":
        reaction = payload.get("reaction")
        if not isinstance(reaction, dict):
            raise _malformed("payload.reaction", "'payload.reaction' ({text, messageId}) is required")
        _string(reaction, "messageId", "payload.reaction.messageId", required=True, limit=MESSAGE_ID)
        if reaction.get("text") is not None and not isinstance(reaction["text"], str):
            raise _malformed("payload.reaction.text", "'payload.reaction.text' must be a string")

    if at is None and event in _MESSAGES:
        at = datetime.fromtimestamp(int(payload["timestamp"]), UTC)
    if at is None and header_timestamp and _MS_DIGITS.fullmatch(header_timestamp.strip()):
        at = _epoch_ms(int(header_timestamp.strip()), "X-Webhook-Timestamp")
    at = at or datetime.now(UTC)
    dedupe_key = envelope_id or "sha256:" + hashlib.sha256(_canonical(document)).hexdigest()
    return NewEvent(
        source="waha",
        kind=event,
        dedupe_key=dedupe_key,
        payload={"envelope": document, "occurred_at": at.isoformat()},
        occurred_at=at,
    )


def _canonical(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _check(payload: dict[str, Any], key: str, kind: str, limit: int) -> None:
    field, value = f"payload.{key}", payload.get(key)
    if kind == "id":
        if isinstance(value, bool) or not isinstance(value, str | int) or str(value).strip() == "":
            raise _malformed(field, f"'{field}' (a string or number id) is required")
        if len(str(value)) > limit:
            raise _malformed(field, f"'{field}' is longer than {limit} characters")
    elif kind == "text":
        _string(payload, key, field, required=True, limit=limit)
    elif kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise _malformed(field, f"'{field}' (an integer) is required")
    elif kind == "epoch" and not _is_epoch(value, _MAX_EPOCH_MS // 1000):
        raise _malformed(field, f"'{field}' (epoch seconds) is required")


def _check_color(label: dict[str, Any], field: str) -> None:
    """A label's colour number is kept in an INTEGER column (a colour that is not a number is
    ignored, as before)."""
    color = label.get("color")
    low, high = INTEGER_RANGE
    if isinstance(color, int) and not isinstance(color, bool) and not low <= color <= high:
        raise _malformed(field, f"'{field}' must be between {low} and {high}")


def _check_message(message: dict[str, Any]) -> None:
    """The parts of a message that land in length-limited columns: the sender's name, and the id
    of the message it replies to."""
    data = message.get("_data")
    if isinstance(data, dict):
        for key in ("notifyName", "pushName"):
            if data.get(key):
                _string(data, key, f"payload._data.{key}", limit=room(Contact.name))
    reply_to = message.get("replyTo")
    if isinstance(reply_to, dict) and reply_to.get("id"):
        _string(reply_to, "id", "payload.replyTo.id", limit=room(Message.reply_to))


def _string(
    container: dict[str, Any], key: str, field: str, *, required: bool = False, limit: int
) -> str | None:
    value = container.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _malformed(field, f"'{field}' (a non-empty string) is required")
    if len(value) > limit:
        raise _malformed(field, f"'{field}' is longer than {limit} characters")
    return value


def _epoch_ms(value: Any, field: str) -> datetime | None:
    if value is None:
        return None
    if not _is_epoch(value, _MAX_EPOCH_MS):
        raise _malformed(field, f"'{field}' must be epoch milliseconds (an integer)")
    return datetime.fromtimestamp(value / 1000, UTC)


def _is_epoch(value: Any, ceiling: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= ceiling


def _malformed(field: str, error: str) -> Rejected:
    return Rejected(400, f"not a WAHA webhook: {error}", field=field, reason="shape")
