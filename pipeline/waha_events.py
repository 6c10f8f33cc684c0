"""WAHA messages and receipts, adapted to the pipeline the Cloud API's already go through.

A WAHA ``message`` (WAMessage, docs/formats.md "WAHA") is rewritten as a Cloud API message and handed to
``context.record_inbound_message`` with the sender's identity (a phone for ``…@c.us``, an opaque
LID for ``…@lid``), so conversations, the window, deals and opt-outs follow the same rules. A
``message.ack`` becomes a Cloud API status for ``delivery_reports``. Nothing about context is
decided here.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from models import Message
from pipeline import context, delivery_reports
from pipeline.labels import WahaEvent, person_in

# WAHA's ack levels (enums.dto.ts): ERROR -1, PENDING 0, SERVER 1, DEVICE 2, READ 3, PLAYED 4.
ACK_STATUSES = {-1: "failed", 1: "sent", 2: "delivered", 3: "read", 4: "played"}
_MEDIA_KINDS = {"image": "image", "video": "video", "audio": "audio"}


def record_message(session: Session, stored: dict[str, Any]) -> Message | None:
    """An inbound message from a person's chat joins that contact's conversation."""
    event = WahaEvent.of(stored)
    message = event.payload
    if message.get("fromMe"):
        return None  # our own message, typed on the phone: not an inbound message
    sighting = person_in(event, str(message["from"]))
    if sighting is None:
        return None
    # The same message under another envelope (message and message.any) is stored once: the
    # context step checks under the message's lock.
    data = message.get("_data") if isinstance(message.get("_data"), dict) else {}
    sighting.name = data.get("notifyName") or data.get("pushName") or None
    cloud = as_cloud_message(message, sighting.phone.digits if sighting.phone else None)
    channel = {"channel_id": stored["channel_id"]} if stored.get("channel_id") else {}
    return context.record_inbound_message(session, {"message": cloud, **channel}, sighting=sighting)


def as_cloud_message(message: dict[str, Any], wa_id: str | None) -> dict[str, Any]:
    """The Cloud API message a WAMessage would have been; the original is kept under ``waha``."""
    body = message.get("body") if isinstance(message.get("body"), str) else None
    cloud: dict[str, Any] = {
        "id": message["id"],
        "timestamp": str(int(message["timestamp"])),
        "waha": message,
    }
    if wa_id:
        cloud["from"] = wa_id
    reply_to = message.get("replyTo")
    if isinstance(reply_to, dict) and reply_to.get("id"):
        cloud["context"] = {"id": reply_to["id"]}
    media = message.get("media") if isinstance(message.get("media"), dict) else {}
    location = message.get("location")
    if isinstance(location, dict):
        cloud["type"] = "location"
        cloud["location"] = {
            "latitude": location.get("latitude"),
            "longitude": location.get("longitude"),
            "name": location.get("description"),
        }
    elif message.get("vCards"):
        cloud["type"] = "contacts"
        cloud["contacts"] = [{"vcard": card} for card in message["vCards"]]
    elif message.get("hasMedia"):
        mimetype = str(media.get("mimetype") or "")
        kind = _MEDIA_KINDS.get(mimetype.split("/", 1)[0], "document")
        cloud["type"] = kind
        cloud[kind] = {
            "mime_type": mimetype or None,
            "caption": body or None,
            "filename": media.get("filename"),
            "url": media.get("url"),
        }
    else:
        cloud["type"] = "text"
        cloud["text"] = {"body": body or ""}
    return cloud


def record_ack(session: Session, stored: dict[str, Any]) -> None:
    """A receipt for a message we sent through WAHA, applied like a Cloud API status."""
    event = WahaEvent.of(stored)
    ack = event.payload
    status = ACK_STATUSES.get(ack["ack"])
    if status is None or ack.get("fromMe") is False:
        return  # PENDING says nothing new; acks of the customer's own messages are not ours
    delivery_reports.record_status(
        session,
        {
            "status": {
                "id": str(ack["id"]),
                "status": status,
                "timestamp": str(int(event.occurred_at.timestamp())),
                "recipient_id": ack.get("to"),
            }
        },
        skip_known=True,  # WAHA may tell us the same ack again
    )
