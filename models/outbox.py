"""The outbox: every automated message we mean to send, written in the transaction that
decided to send it, and unique on what caused it, so no cause ever sends twice."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy import text as sql
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType, utcnow
from models.types import BigId

# queued -> sending -> sent; or failed / blocked_window (with the gateway's error); or
# cancelled before it went out. After "sent", the delivery status lives on the message row.
# A "sending" row is only claimed until its ``dispatched_at`` is set (committed right before the
# gateway call): without it nothing can have left, and the row may go back to "queued".
QUEUED, SENDING, SENT = "queued", "sending", "sent"
FAILED, BLOCKED_WINDOW, CANCELLED = "failed", "blocked_window", "cancelled"
# Its window was closed and its template is paused, rejected or disabled at Meta: not sent.
BLOCKED_TEMPLATE = "blocked_template"


class OutboundMessage(Base):
    __tablename__ = "outbound_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # What caused it, e.g. "order:SO-1001:order_paid"; the unique insert is the dedupe.
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    trigger: Mapped[str] = mapped_column(String(40))
    # The signed-in agent who wrote it (an agent's reply); None for automation.
    sender_agent: Mapped[str | None] = mapped_column(String(64))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    broadcast_id: Mapped[int | None] = mapped_column(ForeignKey("broadcasts.id"), index=True)
    # The number it goes out through; NULL: the settings channel.
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id"))
    text: Mapped[str] = mapped_column(Text)
    # {"name", "language", "parameters": [values in order]}: used when the window is closed.
    template: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # A rich message: the Cloud API message object without messaging_product/to, as checked by
    # domain/outbound_kinds.py (NULL: plain ``text``). ``text`` then holds its readable text.
    body: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # The file of ours (POST /api/media) that the body sends by id, if any.
    media_file_id: Mapped[int | None] = mapped_column(ForeignKey("media_files.id"))
    state: Mapped[str] = mapped_column(String(16), default=QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set right before the gateway call of the current attempt, cleared when the row is given back.
    dispatched_at: Mapped[datetime | None]
    gateway: Mapped[str | None] = mapped_column(String(16))
    sent_as: Mapped[str | None] = mapped_column(String(16))  # text | template
    external_id: Mapped[str | None] = mapped_column(String(255), index=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    error: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        # The sweeper's scan: only rows still on their way are indexed.
        Index(
            "ix_outbound_messages_unfinished",
            "next_attempt_at",
            postgresql_where=sql("state IN ('queued', 'sending')"),
            sqlite_where=sql("state IN ('queued', 'sending')"),
        ),
    )
