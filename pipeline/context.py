"""Context reconstruction: a message becomes part of its contact's conversation.

Kept per conversation: the messages, the 24-hour customer-service window (open until 24 h after
the customer's last message), when the customer last wrote and when we last answered, how long
that answer took; per contact: the open deal and its stage. Messages can arrive out of order, so
every "last" time is a maximum, never an overwrite.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain import answer_hours, opt_out, service_window
from domain.message_types import describe
from domain.outcomes import OPTED_OUT
from models import Contact, Conversation, Deal, Message
from models.conversations import INBOUND, OUTBOUND
from models.types import room
from observability.metrics import FIRST_RESPONSE_SECONDS
from pipeline import (
    attribution,
    channels,
    conversions,
    crm_sync,
    followup_effects,
    identity,
    locks,
    media,
    outcomes,
    receipts,
)
from queueing import publish
from queueing.after_commit import publish_after_commit
from settings import settings


def record_inbound_message(
    session: Session, payload: dict[str, Any], sighting: identity.Sighting | None = None
) -> Message | None:
    """Store one Cloud API inbound message (as the producer put it in the inbox). Other gateways
    adapt their message to that shape and say who sent it (``sighting``), e.g. an ``@lid``.
    None: the message is stored already (WAHA tells it twice, as ``message`` and ``message.any``)."""
    message = payload["message"]
    profile = payload.get("contact") or {}
    sighting = sighting or identity.from_whatsapp(
        wa_id=message.get("from") or profile.get("wa_id"),
        bsuid=message.get("from_user_id") or profile.get("user_id"),
        name=(profile.get("profile") or {}).get("name"),
    )
    new_number = _changed_number(message)
    if new_number:
        # The old and the new WhatsApp id are one person from now on.
        sighting.identities.extend(new_number.identities)
    contact = identity.resolve_contact(session, sighting)
    locks.message(session, message["id"])  # after the contact, as everywhere (pipeline/locks.py)
    if session.scalar(select(Message.id).where(Message.external_id == message["id"])):
        return None
    if new_number and new_number.phone and new_number.phone.is_valid:
        contact.phone_e164 = new_number.phone.e164
    occurred_at = datetime.fromtimestamp(int(message["timestamp"]), UTC)
    content = describe(message)

    conversation = _conversation_for(session, contact, occurred_at, payload.get("channel_id"))
    stored = Message(
        external_id=message["id"],
        contact_id=contact.id,
        conversation_id=conversation.id,
        direction=INBOUND,
        type=content.type,
        raw_type=content.raw_type,
        text=content.text,
        payload=message,
        referral=content.referral,
        reply_to=content.reply_to,
        occurred_at=occurred_at,
    )
    session.add(stored)
    crm_sync.queue_log(session, contact.id)  # the conversation log in Odoo (nothing while ODOO_URL is unset)

    _learn_response_time(contact, conversation, occurred_at)
    zone = ZoneInfo(settings.timezone)
    contact.answer_hours = answer_hours.counted(contact.answer_hours, occurred_at, zone)
    if contact.last_outbound_at is not None:  # else no follow-up of ours can be waiting for this
        followup_effects.note_answer(session, contact.id, occurred_at)
    conversation.message_count += 1
    conversation.last_message_at = max(conversation.last_message_at, occurred_at)
    conversation.last_inbound_at = _latest(conversation.last_inbound_at, occurred_at)
    conversation.window_expires_at = service_window.closes_at(conversation.last_inbound_at)
    if conversation.awaiting_reply_since is None and _after(occurred_at, conversation.last_outbound_at):
        conversation.awaiting_reply_since = occurred_at
    contact.last_inbound_at = _latest(contact.last_inbound_at, occurred_at)
    outcomes.customer_wrote(conversation)
    if content.type == "text" and opt_out.is_opt_out(content.text):
        outcomes.apply(conversation, OPTED_OUT, occurred_at)
        if contact.opted_out_at is None:
            contact.opted_out_at = occurred_at  # broadcasts skip this contact from now on

    if content.referral and contact.referral is None:
        # Meta sends the ad referral only on the first message after the click: keep it now.
        contact.referral = content.referral
        contact.lead_source = (
            f"{content.referral.get('source_type') or 'ad'}:{content.referral.get('source_id') or '?'}"
        )

    ensure_open_deal(session, contact)
    session.flush()
    touch = attribution.note_inbound(session, contact, conversation, stored)  # ad, link, broadcast
    if touch is not None:
        conversions.queue_lead(session, touch)  # an ad's click became a conversation: tell Meta
    media.note_inbound(session, stored)  # an image, a voice note...: fetched by the media worker
    # What happens next is decided on the routing queue, once this transaction has committed.
    publish_after_commit(session, "messages_to_route", stored.id, publish.route_messages)
    return stored


def record_outbound_message(
    session: Session,
    contact: Contact,
    *,
    external_id: str | None,
    type: str,
    text: str | None,
    payload: dict[str, Any],
    sent_at: datetime,
    responder: str | None = None,
    channel_id: int | None = None,
    sender_type: str | None = None,
    sender_agent: str | None = None,
) -> Message:
    """Store a message we sent; receipts that arrived before it are applied now.

    Only a reply (``responder``: human, automation or ai) answers what the customer last asked and
    times the response; a notification we started (an order update, a broadcast) does not.
    ``sender_type`` and ``sender_agent`` say who sent it (domain.senders).
    """
    if external_id:
        locks.message(session, external_id)
        echoed = session.scalar(select(Message).where(Message.external_id == external_id))
        if echoed is not None:
            # The gateway's echo of this very send was recorded first (as typed on the phone):
            # it is this message; only who sent it changes.
            echoed.sender_type, echoed.sender_agent = sender_type, sender_agent
            return echoed
    conversation = _conversation_for(session, contact, sent_at, channel_id)
    stored = Message(
        external_id=external_id,
        contact_id=contact.id,
        conversation_id=conversation.id,
        direction=OUTBOUND,
        type=type,
        text=text,
        payload=payload,
        occurred_at=sent_at,
        status="sent" if external_id else "queued",
        status_rank=1 if external_id else 0,
        status_at=sent_at,
        sender_type=sender_type,
        sender_agent=sender_agent,
    )
    session.add(stored)
    crm_sync.queue_log(session, contact.id)
    conversation.message_count += 1
    conversation.last_message_at = max(conversation.last_message_at, sent_at)
    conversation.last_outbound_at = _latest(conversation.last_outbound_at, sent_at)
    waiting = conversation.awaiting_reply_since
    if responder is not None and waiting is not None and waiting <= sent_at:
        conversation.last_response_seconds = (sent_at - waiting).total_seconds()
        conversation.awaiting_reply_since = None
        if conversation.first_responder is None:
            conversation.first_responder = responder
            conversation.first_response_seconds = conversation.last_response_seconds
            FIRST_RESPONSE_SECONDS.labels(responder).observe(conversation.last_response_seconds)
    contact.last_outbound_at = _latest(contact.last_outbound_at, sent_at)
    session.flush()
    if external_id:
        receipts.apply_recorded(session, external_id)
    return stored


def answered_since(conversation: Conversation, message: Message) -> bool:
    """A reply of ours has gone out since this customer message (our reply clears
    ``awaiting_reply_since``; a later unanswered message sets it anew)."""
    waiting = conversation.awaiting_reply_since
    return waiting is None or waiting > message.occurred_at


def ensure_open_deal(session: Session, contact: Contact) -> Deal:
    """Every chat is a lead: a contact without an open deal gets one at stage ``new``."""
    deal = session.scalars(select(Deal).where(Deal.contact_id == contact.id, Deal.status == "open")).first()
    if deal is None:
        deal = Deal(
            contact_id=contact.id,
            company_id=contact.company_id,
            # Cut to the column: a name may already fill all of Contact.name.
            title=f"WhatsApp lead: {contact.name or 'unknown'}"[: room(Deal.title)],
        )
        session.add(deal)
    return deal


def _conversation_for(
    session: Session, contact: Contact, at: datetime, channel_id: int | None
) -> Conversation:
    """The contact's conversation on this channel (None: the settings channel) that ``at``
    belongs to; a new one after a long silence. A contact is one person across channels, but
    each channel has its own conversations, window and assignee."""
    idle = timedelta(hours=settings.conversation_idle_hours)
    latest = session.scalars(
        select(Conversation)
        .where(Conversation.contact_id == contact.id, channels.same(Conversation.channel_id, channel_id))
        .order_by(Conversation.last_message_at.desc())
        .limit(1)
    ).first()
    if latest and latest.started_at - idle <= at <= latest.last_message_at + idle:
        latest.started_at = min(latest.started_at, at)
        return latest
    conversation = Conversation(
        contact_id=contact.id, channel_id=channel_id, started_at=at, last_message_at=at
    )
    session.add(conversation)
    session.flush()
    crm_sync.queue_sync(session, contact.id, "new_conversation")  # a lead in Odoo, when sync is on
    return conversation


def _learn_response_time(contact: Contact, conversation: Conversation, occurred_at: datetime) -> None:
    """The customer answers our last message: fold how long they took into their typical
    response time (a moving average that follows the customer's habits as they change)."""
    asked = conversation.last_outbound_at
    if asked is None or occurred_at <= asked:
        return
    if conversation.last_inbound_at is not None and conversation.last_inbound_at >= asked:
        return  # they had already answered that message
    seconds = (occurred_at - asked).total_seconds()
    typical = contact.typical_response_seconds
    contact.typical_response_seconds = seconds if typical is None else 0.7 * typical + 0.3 * seconds


def _changed_number(message: dict[str, Any]) -> identity.Sighting | None:
    """A ``user_changed_number`` system message names the customer's new WhatsApp id."""
    system = message.get("system") if message.get("type") == "system" else None
    if isinstance(system, dict) and system.get("type") == "user_changed_number" and system.get("wa_id"):
        return identity.from_whatsapp(str(system["wa_id"]))
    return None


def _latest(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None else max(current, candidate)


def _after(moment: datetime, reference: datetime | None) -> bool:
    return reference is None or moment > reference
