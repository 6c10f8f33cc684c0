"""Conversations, the messages in them, and the delivery receipts of outbound messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy import text as sql
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType, utcnow
from models.types import BigId

INBOUND, OUTBOUND = "inbound", "outbound"


class Conversation(Base):
    """A contact's chat session; a new one starts after CONVERSATION_IDLE_HOURS of silence."""

    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    # The number the chat is with; NULL: the settings channel (models.channels).
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id"))
    started_at: Mapped[datetime]
    last_message_at: Mapped[datetime]
    last_inbound_at: Mapped[datetime | None]
    last_outbound_at: Mapped[datetime | None]
    # The customer-service window: free-form replies are allowed until this moment.
    window_expires_at: Mapped[datetime | None]
    # Oldest customer message not yet answered; cleared (and timed) by our next reply.
    awaiting_reply_since: Mapped[datetime | None]
    last_response_seconds: Mapped[float | None]
    message_count: Mapped[int] = mapped_column(default=0)
    # A human who took the conversation over: automation stays out of it.
    owner_agent: Mapped[str | None] = mapped_column(String(64))
    # The agent routing assigned (sticky for the contact on this channel, pipeline/assignment.py).
    assigned_agent: Mapped[str | None] = mapped_column(String(64))
    # Buying intents seen so far (lead scoring remembers them for the whole conversation).
    intents: Mapped[list[str] | None] = mapped_column(JSONType)
    # The journey: who answered first and how fast; when and why it ended.
    first_response_seconds: Mapped[float | None]
    first_responder: Mapped[str | None] = mapped_column(String(16))
    closed_at: Mapped[datetime | None]
    closed_reason: Mapped[str | None] = mapped_column(String(64))
    closed_in_window: Mapped[bool | None]
    # What came of it (domain/outcomes.py; NULL: still open) and when; the campaign that brought
    # it (models/campaigns.py Touch.campaign; NULL: organic).
    outcome: Mapped[str | None] = mapped_column(String(16))
    outcome_at: Mapped[datetime | None]
    campaign: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_conversations_contact_last", "contact_id", "last_message_at"),
        # The silence sweeper looks only at open conversations.
        Index(
            "ix_conversations_open_inbound",
            "last_inbound_at",
            postgresql_where=sql("outcome IS NULL"),
            sqlite_where=sql("outcome IS NULL"),
        ),
        # The /inbox queue: open conversations, newest first, paged by (last_message_at, id).
        Index(
            "ix_conversations_open_last",
            "last_message_at",
            "id",
            postgresql_where=sql("closed_at IS NULL"),
            sqlite_where=sql("closed_at IS NULL"),
        ),
        Index("ix_conversations_closed_at", "closed_at", "id"),
    )


class ConversationNote(Base):
    """A private note on a conversation, for the team only: never sent to the customer.
    ``mentions`` are the logins of the accounts named with @login in the text."""

    __tablename__ = "conversation_notes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    author: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    mentions: Mapped[list[str]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # The WhatsApp message id (wamid); outbound messages get theirs when the gateway accepts.
    external_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    direction: Mapped[str] = mapped_column(String(8))
    type: Mapped[str] = mapped_column(String(24))
    # The type exactly as the source named it, when we store it under another (unsupported).
    raw_type: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]]
    referral: Mapped[dict[str, Any] | None]
    reply_to: Mapped[str | None] = mapped_column(String(255))
    occurred_at: Mapped[datetime]
    # Delivery state of outbound messages; only ever moves forward (see domain.statuses).
    status: Mapped[str | None] = mapped_column(String(16))
    status_rank: Mapped[int] = mapped_column(default=0)
    status_at: Mapped[datetime | None]
    error: Mapped[dict[str, Any] | None]
    # Who sent an outbound message (domain.senders): agent, automation, ai, order, followup,
    # broadcast, survey or phone (staff typing on the phone); the agent's login when known.
    sender_type: Mapped[str | None] = mapped_column(String(16))
    sender_agent: Mapped[str | None] = mapped_column(String(64))
    # The customer's current reactions to it: [{"emoji", "from", "at"}], one per person.
    reactions: Mapped[list[Any] | None] = mapped_column(JSONType)
    # Texts it had before each edit, oldest first: [{"text", "at"}]; edited_at: the latest edit.
    edits: Mapped[list[Any] | None] = mapped_column(JSONType)
    edited_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_messages_conversation_time", "conversation_id", "occurred_at"),
        # The routing sweeper looks for recent inbound messages that have no decision yet.
        Index(
            "ix_messages_inbound_created",
            "created_at",
            postgresql_where=sql("direction = 'inbound'"),
            sqlite_where=sql("direction = 'inbound'"),
        ),
    )


class DeliveryStatus(Base):
    """Every receipt we were told about, kept even before its message row exists."""

    __tablename__ = "delivery_statuses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    occurred_at: Mapped[datetime]
    errors: Mapped[list[Any] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("external_id", "status"),)
