"""Contacts, their conversations and messages, as the workers left them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel
from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from api.auth import Caller
from api.crm import CrmSyncOut, crm_sync
from api.labels import LabelChangeOut, label_history
from api.message_fields import shown_fields
from api.permissions import contact_in_reach
from domain import answer_hours, phones, service_window
from domain.outcomes import OPEN
from models import (
    Company,
    Contact,
    ContactIdentity,
    Conversation,
    Deal,
    MediaFile,
    Message,
    Order,
    OutboundMessage,
)
from models.base import utcnow
from models.campaigns import ORGANIC
from models.channels import SETTINGS_CHANNEL
from models.contacts import current_contact, identity_conflicts
from models.db import session_scope
from models.labels import active_labels, contacts_with_label
from pipeline import attribution, channels
from pipeline.identity import PHONE
from pipeline.teams import contact_teams, conversations_of_teams
from settings import settings

router = APIRouter(prefix="/api", tags=["contacts"])

Limit = Annotated[int, Query(ge=1, le=500)]


class ContactOut(BaseModel):
    id: int
    phone: str | None
    phone_invalid_reason: str | None
    name: str | None
    company: str | None
    lead_source: str
    window_open: bool
    last_inbound_at: datetime | None
    last_outbound_at: datetime | None
    created_at: datetime
    labels: list[str] = []  # active labels, by name
    opted_out_at: datetime | None = None  # wrote STOP/BERHENTI: no broadcasts
    lead_class: str | None = None  # hot | warm | cold, recomputed on each message
    lead_score: int | None = None
    lead_reasons: list[str] = []  # what made the score, with points (or the learned model's weights)
    # What scored it: "fixed weights", or "model 3" (the learned lead score; its lead_score is
    # then the chance of an order in percent).
    lead_scored_by: str | None = None
    assigned_agent: str | None = None  # the sales agent who looks after the contact
    automation_paused: bool = False  # no automatic message reaches them while true


class ContactPage(BaseModel):
    items: list[ContactOut]
    next_cursor: str | None


class DealOut(BaseModel):
    id: int
    title: str
    stage: str
    status: str


class ConversationOut(BaseModel):
    id: int
    channel: str  # the channel's name ("settings": the single-number settings)
    started_at: datetime
    last_message_at: datetime
    last_inbound_at: datetime | None
    last_outbound_at: datetime | None
    window_expires_at: datetime | None
    window_open: bool
    awaiting_reply_since: datetime | None
    last_response_seconds: float | None
    message_count: int
    owner_agent: str | None  # a human who took it over: automation stays out
    assigned_agent: str | None = None  # who routing assigned it to (sticky per contact and channel)
    first_responder: str | None  # human | automation | ai
    first_response_seconds: float | None
    closed_at: datetime | None
    closed_reason: str | None
    # What came of it: open | ordered | paid | cancelled | opted_out | went_silent (docs/campaigns.md).
    outcome: str = OPEN
    outcome_at: datetime | None = None
    campaign: str = ORGANIC  # the campaign that brought it, by name (ad headline, link campaign, ...)


class TouchOut(BaseModel):
    """A campaign that reached the contact: an ad, a tracked link, a broadcast."""

    kind: str
    campaign: str
    occurred_at: datetime


class IdentityOut(BaseModel):
    kind: str
    value: str


class OrderSummary(BaseModel):
    order_id: str
    stage: str
    created_at: datetime
    # The contact's first touch ever and last touch before the order, by name ("organic": none).
    first_campaign: str = ORGANIC
    last_campaign: str = ORGANIC


class IdentityConflictOut(BaseModel):
    """An identity two contacts with different phones were named by: kept apart, for a person
    to settle (merge them if they are one)."""

    identity: str  # e.g. "orders:C-42", the order system's contact id
    kind: str
    contact_id: int  # the contact the event went to: the one with the event's phone
    phone: str | None
    other_contact_id: int  # the contact that already had the identity
    other_phone: str | None
    first_seen_at: datetime
    last_seen_at: datetime


def conflicts_of(session: Session, contact_id: int) -> list[IdentityConflictOut]:
    return [
        IdentityConflictOut(
            identity=c.value,
            kind=c.kind,
            contact_id=c.contact_id,
            phone=c.phone,
            other_contact_id=c.other_contact_id,
            other_phone=c.other_phone,
            first_seen_at=c.first_seen_at,
            last_seen_at=c.last_seen_at,
        )
        for c in identity_conflicts(session, contact_id)
    ]


class ContactDetail(ContactOut):
    identities: list[IdentityOut]
    referral: dict[str, Any] | None
    open_deal: DealOut | None
    conversations: list[ConversationOut]
    orders: list[OrderSummary]  # details and messages: GET /api/orders/{order_id}
    label_history: list[LabelChangeOut]  # every label given or taken away, oldest first
    crm: CrmSyncOut  # Odoo partner and lead ids, and how the sync stands
    identity_conflicts: list[IdentityConflictOut]
    usual_hours: list[int] = []  # local hours (TIMEZONE) in which they usually write; follow-ups aim there
    touches: list[TouchOut] = []  # every campaign touch, oldest first: the first is the first touch


class MessageMedia(BaseModel):
    id: str  # what GET /api/media/{id} takes
    url: str
    mime_type: str | None
    size: int | None  # None while an inbound file is still being fetched


class MessageOut(BaseModel):
    id: int
    external_id: str | None
    conversation_id: int
    channel: str  # the channel of its conversation
    direction: str
    type: str
    raw_type: str | None
    text: str | None
    occurred_at: datetime
    status: str | None
    status_at: datetime | None
    error: dict[str, Any] | None
    referral: dict[str, Any] | None
    reply_to: str | None = None  # the external id of the message this one answers (quoted)
    media: MessageMedia | None = None  # the file of a media message, inbound or outbound
    # api/message_fields.py: the WhatsApp type, its object, who sent it, reactions and edits.
    kind: str
    content: Any = None
    sender: dict[str, Any] | None = None  # outbound: {"type", "agent"}
    reactions: list[dict[str, Any]] = []  # [{"emoji", "from", "at"}]
    edited_at: datetime | None = None
    previous_texts: list[dict[str, Any]] = []  # [{"text", "at"}], oldest first


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None


@router.get("/contacts", response_model=ContactPage)
def list_contacts(
    caller: Caller,
    phone: str | None = None,
    label: str | None = None,
    lead_class: Annotated[str | None, Query(pattern="^(hot|warm|cold)$")] = None,
    limit: Limit = 50,
    cursor: int | None = None,
) -> ContactPage:
    """Contacts by id; ``phone`` in any common form narrows to that number, ``label`` to the
    contacts that have that label now (by name, any letter case), ``lead_class`` to hot, warm
    or cold leads. Only the contacts of the caller's teams (a page may then hold fewer than
    ``limit``; follow ``next_cursor``)."""
    query = select(Contact).where(Contact.merged_into_id.is_(None)).order_by(Contact.id).limit(limit)
    if lead_class:
        query = query.where(Contact.lead_class == lead_class)
    if phone:
        parsed = phones.from_user_input(phone, settings.default_region)
        if not parsed.is_valid:
            raise HTTPException(422, f"phone: {parsed.invalid_reason}")
        # Any of the person's numbers finds them (after a merge a contact has several).
        owners = select(ContactIdentity.contact_id).where(
            ContactIdentity.kind == PHONE, ContactIdentity.value == parsed.e164
        )
        query = query.where(Contact.id.in_(owners))
    if label:
        query = query.where(Contact.id.in_(contacts_with_label(label)))
    if cursor is not None:
        query = query.where(Contact.id > cursor)
    with session_scope() as session:
        contacts = session.scalars(query).all()
        visible = [c for c in contacts if caller.teams is None or contact_teams(session, c.id) & caller.teams]
        labels = active_labels(session, [c.id for c in visible])
        items = [_contact_out(session, c, labels.get(c.id, [])) for c in visible]
    return ContactPage(items=items, next_cursor=str(contacts[-1].id) if len(contacts) == limit else None)


@router.get("/contacts/{contact_id}", response_model=ContactDetail)
def get_contact(contact_id: int, caller: Caller) -> ContactDetail:
    """One contact (a merged id answers with the contact it became) with its context."""
    with session_scope() as session:
        contact = current_contact(session, contact_id)
        if contact is None:
            raise HTTPException(404, f"no contact {contact_id}")
        contact_in_reach(session, caller, contact.id)
        identities = session.scalars(
            select(ContactIdentity)
            .where(ContactIdentity.contact_id == contact.id)
            .order_by(ContactIdentity.id)
        ).all()
        deal = session.scalars(
            select(Deal).where(Deal.contact_id == contact.id, Deal.status == "open")
        ).first()
        in_reach = select(Conversation).where(Conversation.contact_id == contact.id)
        if caller.teams is not None:
            in_reach = in_reach.where(Conversation.id.in_(conversations_of_teams(caller.teams)))
        conversations = session.scalars(in_reach.order_by(Conversation.last_message_at.desc())).all()
        orders = session.scalars(
            select(Order).where(Order.contact_id == contact.id).order_by(Order.id.desc())
        ).all()
        now = utcnow()
        channel_names = channels.names(session)
        touches = attribution.touches_of(session, contact.id)
        if caller.teams is not None:  # not the campaigns of another team's conversations
            touches = [t for t in touches if t.conversation_id in {c.id for c in conversations}]
        names = {t.campaign: t.name for t in touches}
        return ContactDetail(
            **_contact_out(session, contact).model_dump(),
            identities=[IdentityOut(kind=i.kind, value=i.value) for i in identities],
            referral=contact.referral,
            open_deal=DealOut(id=deal.id, title=deal.title, stage=deal.stage, status=deal.status)
            if deal
            else None,
            conversations=[
                ConversationOut.model_validate(
                    {
                        **_columns(c),
                        "window_open": service_window.is_open(c.last_inbound_at, now),
                        "channel": channel_names.get(c.channel_id, SETTINGS_CHANNEL),
                        "outcome": c.outcome or OPEN,
                        "campaign": names.get(c.campaign or "", ORGANIC),
                    }
                )
                for c in conversations
            ],
            orders=[
                OrderSummary(
                    order_id=o.external_id,
                    stage=o.stage,
                    created_at=o.created_at,
                    first_campaign=names.get(o.first_campaign or "", ORGANIC),
                    last_campaign=names.get(o.last_campaign or "", ORGANIC),
                )
                for o in orders
            ],
            label_history=label_history(session, contact.id),
            crm=crm_sync(session, contact.id),
            identity_conflicts=conflicts_of(session, contact.id),
            usual_hours=sorted(answer_hours.usual_hours(contact.answer_hours)),
            touches=[TouchOut(kind=t.kind, campaign=t.name, occurred_at=t.occurred_at) for t in touches],
        )


@router.get("/contacts/{contact_id}/messages", response_model=MessagePage)
def list_messages(
    contact_id: int, caller: Caller, limit: Limit = 100, cursor: str | None = None
) -> MessagePage:
    """Inbound and outbound messages, oldest first, with delivery status."""
    with session_scope() as session:
        contact = current_contact(session, contact_id)
        if contact is None:
            raise HTTPException(404, f"no contact {contact_id}")
        contact_in_reach(session, caller, contact.id)
        query = (
            select(Message)
            .where(Message.contact_id == contact.id)
            .order_by(Message.occurred_at, Message.id)
            .limit(limit)
        )
        if caller.teams is not None:  # not another team's conversations with the same person
            query = query.where(Message.conversation_id.in_(conversations_of_teams(caller.teams)))
        if cursor:
            query = query.where(tuple_(Message.occurred_at, Message.id) > _decode_cursor(cursor))
        messages = session.scalars(query).all()
        channel_of = message_channels(session, messages)
        media_of = message_media(session, [m.id for m in messages])
        items = [
            MessageOut.model_validate(
                {
                    **_columns(m),
                    **shown_fields(m),
                    "channel": channel_of[m.conversation_id],
                    "media": media_of.get(m.id),
                }
            )
            for m in messages
        ]
    next_cursor = (
        f"{messages[-1].occurred_at.isoformat()}|{messages[-1].id}" if len(messages) == limit else None
    )
    return MessagePage(items=items, next_cursor=next_cursor)


def message_channels(session: Session, messages: Sequence[Message]) -> dict[int, str]:
    """The channel name of each of these messages' conversations, by conversation id."""
    names = channels.names(session)
    conversation_ids = {m.conversation_id for m in messages}
    rows = session.execute(
        select(Conversation.id, Conversation.channel_id).where(Conversation.id.in_(conversation_ids))
    ).all()
    return {conversation_id: names.get(channel_id, SETTINGS_CHANNEL) for conversation_id, channel_id in rows}


def message_media(session: Session, message_ids: list[int]) -> dict[int, MessageMedia]:
    """The media file of each of these messages that has one: an inbound file is linked to its
    message, an outbound one to the outbox row that sent it by our id."""
    if not message_ids:
        return {}
    inbound = select(MediaFile.message_id, MediaFile).where(MediaFile.message_id.in_(message_ids))
    outbound = (
        select(OutboundMessage.message_id, MediaFile)
        .join(MediaFile, MediaFile.id == OutboundMessage.media_file_id)
        .where(OutboundMessage.message_id.in_(message_ids))
    )
    found: dict[int, MessageMedia] = {}
    for message_id, media in [*session.execute(inbound), *session.execute(outbound)]:
        found[message_id] = MessageMedia(
            id=media.key, url=f"/api/media/{media.key}", mime_type=media.mime_type, size=media.size
        )
    return found


def _contact_out(session: Any, contact: Contact, labels: list[str] | None = None) -> ContactOut:
    company = session.get(Company, contact.company_id) if contact.company_id else None
    if labels is None:
        labels = active_labels(session, [contact.id]).get(contact.id, [])
    return ContactOut(
        id=contact.id,
        phone=contact.phone_e164,
        phone_invalid_reason=contact.phone_invalid_reason,
        name=contact.name,
        company=company.name if company else None,
        lead_source=contact.lead_source,
        window_open=service_window.is_open(contact.last_inbound_at, utcnow()),
        last_inbound_at=contact.last_inbound_at,
        last_outbound_at=contact.last_outbound_at,
        created_at=contact.created_at,
        labels=labels,
        opted_out_at=contact.opted_out_at,
        lead_class=contact.lead_class,
        lead_score=contact.lead_score,
        lead_reasons=contact.lead_reasons or [],
        lead_scored_by=contact.lead_scored_by,
        assigned_agent=contact.assigned_agent,
        automation_paused=contact.automation_paused_at is not None,
    )


def _columns(row: Any) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        moment, _, message_id = cursor.partition("|")
        return datetime.fromisoformat(moment), int(message_id)
    except ValueError as exc:
        raise HTTPException(422, "cursor: not a cursor this API gave out") from exc
