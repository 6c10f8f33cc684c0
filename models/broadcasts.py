"""Broadcasts: one message to every contact that has a label, each sent through the outbox.

A broadcast is expanded in batches into outbox rows unique on (broadcast, contact); the row keeps
how far the expansion got (``expanded_through``), so a task that died half way resumes where it
stopped, and a replayed task adds nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType, utcnow
from models.types import BigId

EXPANDING, EXPANDED = "expanding", "expanded"


class Broadcast(Base):
    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    label: Mapped[str] = mapped_column(String(255))  # the label's name, as asked
    # The client's Idempotency-Key: a retried POST with it is this broadcast, not a second one.
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    text: Mapped[str] = mapped_column(Text)
    # {"name", "language", "parameters"}: sent instead of the text when a window is closed.
    template: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # A rich message (any outbound kind, docs/rich-messages.md) sent instead of the text; ``text``
    # then holds its readable text. The file of ours it sends by id, if any.
    body: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    media_file_id: Mapped[int | None] = mapped_column(ForeignKey("media_files.id"))
    state: Mapped[str] = mapped_column(String(16), default=EXPANDING)  # expanding | expanded
    # Contacts with the label when it was expanded: messages queued plus contacts skipped.
    targeted: Mapped[int] = mapped_column(default=0)
    skipped_opted_out: Mapped[int] = mapped_column(default=0)
    # The highest contact id handled so far: expansion walks contacts in id order.
    expanded_through: Mapped[int] = mapped_column(BigId, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When its expansion task was last published: the sweeper publishes a lost one again.
    published_at: Mapped[datetime] = mapped_column(default=utcnow)
    expanded_at: Mapped[datetime | None]
