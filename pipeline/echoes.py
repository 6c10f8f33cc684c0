"""Staff replies typed on the phone: the gateway's echo of a message we did not send through
the outbox (docs/echoes.md).

WAHA reports them as ``message.any`` with ``fromMe: true``; the Cloud API (coexistence with the
WhatsApp Business app) in the ``smb_message_echoes`` webhook field. Each becomes an outbound
message of its conversation, sent by ``{"type": "phone", "agent": <the channel's phone_agent>}``:
a human answered, so the response clock stops, the first responder is a human, and the nudges
and automated answers still queued for the contact are cancelled. The message lock and the
unique wamid make it once: a replay, or the echo of a send of ours (recorded by the outbox under
the id the gateway gave it), finds the message stored and adds nothing. Should the echo of our
own send come first, the outbox adopts the row when it records the send (pipeline/context.py).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from domain import chat_ids
from domain.automation_content import ADAPTIVE_FOLLOWUP
from domain.message_types import describe
from domain.replies import AI_ANSWER, FAQ_ANSWER, HUMAN
from domain.senders import PHONE
from models import AdaptiveFollowup, Channel, Message, OutboundMessage
from models.base import utcnow
from models.routing import CANCELLED, PENDING
from pipeline import context, identity, locks, message_changes, outbox, waha_events
from pipeline.labels import WahaEvent, person_in

log = logging.getLogger(__name__)

# What a human's answer makes unneeded: automation's answers and nudges not yet sent.
_SUPERSEDED = (FAQ_ANSWER, AI_ANSWER, ADAPTIVE_FOLLOWUP)
_WHY = "staff answered on the phone"


def record_cloud_echo(session: Session, payload: dict[str, Any]) -> Message | None:
    """One ``smb_message_echoes[]`` entry (as the producer put it in the inbox)."""
    echo = payload["message"]
    at = datetime.fromtimestamp(int(echo["timestamp"]), UTC)
    if echo.get("type") == "edit":
        body = echo.get("edit") if isinstance(echo.get("edit"), dict) else {}
        edited = body.get("message") if isinstance(body.get("message"), dict) else {}
        if message_changes.edit(session, str(body.get("original_message_id")), edited, at):
            return None
        echo = {**{k: v for k, v in echo.items() if k != "edit"}, **edited, "id": echo["id"]}
    if echo.get("type") == "revoke":
        log.info("a staff message was deleted on the phone; the history keeps it")
        return None
    profile = payload.get("contact") or {}
    sighting = identity.from_whatsapp(
        wa_id=echo.get("to") or profile.get("wa_id"), bsuid=echo.get("to_user_id") or profile.get("user_id")
    )
    return record_echo(session, sighting, echo, at, payload.get("channel_id"))


def record_waha_message(session: Session, stored: dict[str, Any]) -> Message | None:
    """A WAHA ``message`` (the customer's, by WAHA's definition); one naming ``editedMessageId``
    is an edit."""
    if WahaEvent.of(stored).payload.get("editedMessageId"):
        return record_waha_edit(session, stored)
    return waha_events.record_message(session, stored)


def record_waha_any(session: Session, stored: dict[str, Any]) -> Message | None:
    """A WAHA ``message.any``: the customer's messages are the ``message`` event's too (stored
    once); our own are staff replies typed on the phone unless WAHA says the API sent them."""
    event = WahaEvent.of(stored)
    message = event.payload
    if message.get("editedMessageId"):
        return record_waha_edit(session, stored)
    if not message.get("fromMe"):
        return waha_events.record_message(session, stored)
    if message.get("source") == "api":
        return None  # sent through WAHA's API: ours, recorded by the outbox under this id
    sighting = person_in(event, _chat_of(message, event.account))
    if sighting is None:
        return None
    cloud = waha_events.as_cloud_message(message, sighting.phone.digits if sighting.phone else None)
    cloud.pop("from", None)  # the chat is the customer's; the message is ours
    return record_echo(session, sighting, cloud, _at(message, event.occurred_at), stored.get("channel_id"))


def record_waha_reaction(session: Session, stored: dict[str, Any]) -> None:
    """A WAHA ``message.reaction``: ``reaction: {text, messageId}``; an empty text removes it."""
    event = WahaEvent.of(stored)
    payload = event.payload
    reaction = payload.get("reaction") if isinstance(payload.get("reaction"), dict) else {}
    who = "business" if payload.get("fromMe") else chat_ids.parse(str(payload.get("from"))).value
    at, emoji = _at(payload, event.occurred_at), reaction.get("text") or ""
    if message_changes.react(session, str(reaction.get("messageId")), emoji, who, at) or payload.get(
        "fromMe"
    ):
        return
    # A reaction to a message not in our history is kept as a message of its own (not answered).
    sighting = person_in(event, str(payload.get("from")))
    if sighting is None:
        return
    cloud = {
        "id": str(payload["id"]),
        "timestamp": str(int(at.timestamp())),
        "type": "reaction",
        "reaction": {"message_id": str(reaction.get("messageId")), "emoji": emoji},
        "waha": payload,
    }
    if sighting.phone:
        cloud["from"] = sighting.phone.digits
    channel = {"channel_id": stored["channel_id"]} if stored.get("channel_id") else {}
    context.record_inbound_message(session, {"message": cloud, **channel}, sighting=sighting)


def record_waha_edit(session: Session, stored: dict[str, Any]) -> Message | None:
    """A WAHA edit (``message.edited``, or a message naming ``editedMessageId``): the original
    now reads ``body``. Its original unknown, it is a message of its own."""
    event = WahaEvent.of(stored)
    payload = event.payload
    edited = {"type": "text", "text": {"body": payload.get("body") or ""}}
    at = _at(payload, event.occurred_at)
    if message_changes.edit(session, str(payload.get("editedMessageId")), edited, at):
        return None
    plain = {k: v for k, v in payload.items() if k != "editedMessageId"}
    return record_waha_any(session, {**stored, "envelope": {**stored["envelope"], "payload": plain}})


def record_echo(
    session: Session, sighting: identity.Sighting, message: dict[str, Any], at: datetime, channel_id: Any
) -> Message | None:
    """Store ``message`` (a Cloud API message object) as typed by staff on the phone, once."""
    contact = identity.resolve_contact(session, sighting)
    locks.message(session, message["id"])
    known = session.scalar(
        select(OutboundMessage.id).where(OutboundMessage.external_id == message["id"]).limit(1)
    )
    if known or session.scalar(select(Message.id).where(Message.external_id == message["id"])):
        return None  # a replay, or the echo of a send of ours
    content = describe(message)
    stored = context.record_outbound_message(
        session,
        contact,
        external_id=message["id"],
        type=content.type,
        text=content.text,
        payload=message,
        sent_at=at,
        responder=HUMAN,
        channel_id=channel_id,
        sender_type=PHONE,
        sender_agent=_phone_agent(session, channel_id),
    )
    stored.raw_type, stored.reply_to = content.raw_type, content.reply_to
    _cancel_automation(session, contact.id)
    return stored


def _cancel_automation(session: Session, contact_id: int) -> None:
    """A human answered: pending nudges and queued automated answers would answer twice."""
    now = utcnow()
    session.execute(
        update(AdaptiveFollowup)
        .where(AdaptiveFollowup.contact_id == contact_id, AdaptiveFollowup.state == PENDING)
        .values(state=CANCELLED, reason=_WHY, updated_at=now)
    )
    outbox.cancel_queued(
        session,
        OutboundMessage.contact_id == contact_id,
        OutboundMessage.trigger.in_(_SUPERSEDED),
        why=_WHY,
    )


def _phone_agent(session: Session, channel_id: Any) -> str | None:
    """The agent who answers on this number's phone (``phone_agent`` of the channel), if set."""
    if not channel_id:
        return None
    return session.scalar(select(Channel.phone_agent).where(Channel.id == int(channel_id)))


def _chat_of(message: dict[str, Any], me: str | None) -> str:
    """The customer's chat of a message of ours: ``to``; some engines put it in ``from`` or only
    in ``_data.key.remoteJid``. Never the session's own account (``me.id``)."""
    data = message.get("_data") if isinstance(message.get("_data"), dict) else {}
    key = data.get("key") if isinstance(data.get("key"), dict) else {}
    own = chat_ids.parse(me).value if me else None
    for chat in (message.get("to"), key.get("remoteJid"), message.get("from")):
        parsed = chat_ids.parse(chat) if isinstance(chat, str) and chat else None
        if parsed is not None and parsed.is_person and parsed.value != own:
            return chat.replace("@s.whatsapp.net", "@c.us")
    return str(message.get("to") or message.get("from") or "")


def _at(payload: dict[str, Any], default: datetime) -> datetime:
    stamp = payload.get("timestamp")
    if isinstance(stamp, int) and not isinstance(stamp, bool) and 0 < stamp < 10**11:
        return datetime.fromtimestamp(stamp, UTC)
    return default
