"""What customers answered in a WhatsApp Flow (a lead form, an order look-up, the survey)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow
from models.types import BigId


class FlowAnswer(Base):
    """One submitted screen of one Flow opened by one customer. Meta may repeat a request (a
    timeout, a retry): the same (token, screen) keeps its latest answer instead of a second row."""

    __tablename__ = "flow_answers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    flow: Mapped[str] = mapped_column(String(64))
    flow_token: Mapped[str] = mapped_column(String(128))
    screen: Mapped[str] = mapped_column(String(64))
    answers: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("flow_token", "screen"),)
