"""The message templates of each WhatsApp Business Account, as Meta holds them.

Synced from the Graph API and kept current by the ``message_template_status_update`` and
``template_category_update`` webhooks. ``status_at`` is when Meta set the status we hold: an
older webhook arriving late never overwrites a newer status.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType, utcnow
from models.types import BigId

APPROVED = "APPROVED"
# What a send must not use: Meta refuses it, or it is not usable yet.
UNUSABLE = frozenset({"PAUSED", "DISABLED", "REJECTED", "DELETED", "PENDING", "PENDING_DELETION", "ARCHIVED"})


class MessageTemplate(Base):
    __tablename__ = "message_templates"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    waba_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(512))
    language: Mapped[str] = mapped_column(String(15))
    remote_id: Mapped[str | None] = mapped_column(String(64), index=True)
    category: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(1000))
    components: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    status_at: Mapped[datetime]
    synced_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("waba_id", "name", "language"),)
