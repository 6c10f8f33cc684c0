"""People and the businesses around them: contacts, their identities, companies and deals."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, or_, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from models.base import Base, JSONType, utcnow
from models.types import BigId


class Company(Base):
    __tablename__ = "companies"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Contact(Base):
    """A person. When two contacts turn out to be one, the younger points at the survivor."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(255))
    phone_e164: Mapped[str | None] = mapped_column(String(20), index=True)
    # Set when the only number we have for this person is not a valid phone number.
    phone_invalid_reason: Mapped[str | None] = mapped_column(String(255))
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"))
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"))
    # Click-to-WhatsApp attribution, kept from the first message that carried it.
    referral: Mapped[dict[str, Any] | None]
    lead_source: Mapped[str] = mapped_column(String(64), default="organic")
    last_inbound_at: Mapped[datetime | None]
    last_outbound_at: Mapped[datetime | None]
    # When the customer wrote STOP/BERHENTI: broadcasts skip them from then on.
    opted_out_at: Mapped[datetime | None]
    # How fast this customer usually answers us (a moving average), for adaptive follow-ups.
    typical_response_seconds: Mapped[float | None]
    # Their messages per local hour (24 counts), for sending follow-ups when they usually write.
    answer_hours: Mapped[list[int] | None] = mapped_column(JSONType)
    # Routing: the lead class with its reasons, the sales agent who owns the contact, and a
    # pause switch that stops every automatic message to them.
    lead_class: Mapped[str | None] = mapped_column(String(8), index=True)
    lead_score: Mapped[int | None]
    lead_reasons: Mapped[list[str] | None] = mapped_column(JSONType)
    lead_scored_by: Mapped[str | None] = mapped_column(String(32))  # "fixed weights" | "model <id>"
    assigned_agent: Mapped[str | None] = mapped_column(String(64))
    automation_paused_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    company: Mapped[Company | None] = relationship()
    identities: Mapped[list[ContactIdentity]] = relationship(back_populates="contact")


class ContactIdentity(Base):
    """One way of recognising a contact: E.164 phone, wa_id, BSUID, gateway LID, order-system id.

    The unique (kind, value) pair is what makes find-or-create race-free: two workers that see
    a new number at once both try to insert it, and the database lets exactly one win.
    """

    __tablename__ = "contact_identities"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    contact: Mapped[Contact] = relationship(back_populates="identities")

    __table_args__ = (UniqueConstraint("kind", "value"),)


class IdentityConflict(Base):
    """An identity an event named that another contact, with another valid phone, already holds.

    A phone is the person; an order system's contact id is only what that system believes. So
    an event for "C-42" with a new number goes to that number's contact and does not make the
    two one: the claim is kept here for a person to look at (and merge if they are one), seen
    from both contacts, instead of silently merging two customers or messaging a stale number.
    """

    __tablename__ = "identity_conflicts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)  # the event's
    other_contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)  # holder
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(255))
    phone: Mapped[str | None] = mapped_column(String(20))  # the event's phone
    other_phone: Mapped[str | None] = mapped_column(String(20))  # the holder's
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


def identity_conflicts(session: Session, contact_id: int) -> list[IdentityConflict]:
    """The conflicts a contact is part of, on either side, oldest first."""
    return list(
        session.scalars(
            select(IdentityConflict)
            .where(
                or_(
                    IdentityConflict.contact_id == contact_id, IdentityConflict.other_contact_id == contact_id
                )
            )
            .order_by(IdentityConflict.id)
        )
    )


class Deal(Base):
    """A sales opportunity; a contact has at most one open deal at a time."""

    __tablename__ = "deals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("companies.id"))
    title: Mapped[str] = mapped_column(String(255))
    stage: Mapped[str] = mapped_column(String(32), default="new")
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | won | lost
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index(
            "uq_deals_open_per_contact",
            "contact_id",
            unique=True,
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
    )


def current_contact(session: Session, contact_id: int) -> Contact | None:
    """The contact an id stands for today, following merges to the survivor."""
    contact = session.get(Contact, contact_id)
    for _ in range(32):
        if contact is None or contact.merged_into_id is None:
            return contact
        contact = session.get(Contact, contact.merged_into_id)
    raise RuntimeError("merge chain too long")
