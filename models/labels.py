"""WhatsApp Business labels: the catalogue, who has which label now, and every change ever made.

Labels live in a WhatsApp Business app account, reached through a gateway session, so a label is
keyed by (gateway session, the gateway's label id): a rename changes ``name`` and keeps the id,
so history stays under the same label. Events can arrive out of order; each current state keeps
the event time it comes from (``as_of``/``changed_at``) and older events never overwrite it.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint, func, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from models.base import Base, utcnow
from models.types import BigId

ADDED, REMOVED = "added", "removed"


class Label(Base):
    __tablename__ = "labels"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    session: Mapped[str] = mapped_column(String(64))  # the gateway session (a WhatsApp account)
    external_id: Mapped[str] = mapped_column(String(64))  # the gateway's label id ("4")
    # Unknown until a label.upsert (or an association carrying the label) tells us.
    name: Mapped[str | None] = mapped_column(String(255))
    color: Mapped[int | None]
    color_hex: Mapped[str | None] = mapped_column(String(16))
    deleted_at: Mapped[datetime | None]
    # Event time of the newest label.upsert/label.deleted applied: older ones are ignored.
    as_of: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("session", "external_id"),)

    @property
    def display_name(self) -> str:
        return self.name or f"label #{self.external_id}"


class ContactLabel(Base):
    """Whether a contact has a label now: the newest event (by event time) for the pair decides."""

    __tablename__ = "contact_labels"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id"))
    active: Mapped[bool]
    changed_at: Mapped[datetime]  # event time of the change that set ``active``
    changed_by_session: Mapped[str | None] = mapped_column(String(64))
    changed_by_staff: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("contact_id", "label_id"),
        # "Who has this label now": only active rows are indexed.
        Index(
            "ix_contact_labels_active",
            "label_id",
            "contact_id",
            postgresql_where=text("active"),
            sqlite_where=text("active"),
        ),
    )


class LabelChange(Base):
    """One label given or taken away, as the gateway reported it; kept even when it arrived too
    late to change the current state (``applied`` false)."""

    __tablename__ = "label_changes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id"))
    label_name: Mapped[str | None] = mapped_column(String(255))  # the name when it happened
    action: Mapped[str] = mapped_column(String(8))  # added | removed
    occurred_at: Mapped[datetime]  # the event's time, not the time we heard of it
    session: Mapped[str] = mapped_column(String(64))
    account: Mapped[str | None] = mapped_column(String(128))  # the WhatsApp account (me.id)
    staff: Mapped[str | None] = mapped_column(String(255))
    cause: Mapped[str] = mapped_column(String(32))  # the gateway event: label.chat.added, ...
    applied: Mapped[bool]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_label_changes_contact_time", "contact_id", "occurred_at"),
        Index("ix_label_changes_label_time", "label_id", "occurred_at"),
        Index("ix_label_changes_time", "occurred_at"),
        # The labels page's staff figures, index-only: labels given in a window (who, to whom),
        # and the contacts ever given the target label.
        Index(
            "ix_label_changes_added_time",
            "occurred_at",
            postgresql_include=["staff", "contact_id"],
            postgresql_where=text("action = 'added'"),
            sqlite_where=text("action = 'added'"),
        ),
        Index(
            "ix_label_changes_added_label",
            "label_id",
            "contact_id",
            postgresql_where=text("action = 'added'"),
            sqlite_where=text("action = 'added'"),
        ),
    )


class LabelFlowContact(Base):
    """The daily roll-up's unique rows: this contact was given (or lost) this label on this local
    day (``TIMEZONE``), however many changes said so. Inserted once (``ON CONFLICT DO NOTHING``):
    the insert that happens is the one that bumps ``label_flow_days``, so replays and a second
    change on the same day count once. Kept by ``pipeline.label_flow``."""

    __tablename__ = "label_flow_contacts"

    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id"), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(String(8), primary_key=True)  # added | removed
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), primary_key=True)

    # A merge moves a contact's rows: found by contact.
    __table_args__ = (Index("ix_label_flow_contacts_contact", "contact_id"),)


class LabelFlowDay(Base):
    """Per label, local day and action, how many distinct contacts: the count of
    ``label_flow_contacts`` rows, kept as a counter so the chart reads a few thousand rows."""

    __tablename__ = "label_flow_days"

    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id"), primary_key=True)
    day: Mapped[date] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(String(8), primary_key=True)
    contacts: Mapped[int]

    __table_args__ = (Index("ix_label_flow_days_day", "day"),)


def label_ids_named(name: str):  # type: ignore[no-untyped-def]
    """Ids of the live labels with this name, in any session and any letter case."""
    return select(Label.id).where(func.lower(Label.name) == name.strip().lower(), Label.deleted_at.is_(None))


def contacts_with_label(name: str):  # type: ignore[no-untyped-def]
    """Ids of the contacts that have this label now (a subquery, distinct)."""
    return (
        select(ContactLabel.contact_id)
        .where(ContactLabel.active, ContactLabel.label_id.in_(label_ids_named(name)))
        .distinct()
    )


def active_labels(session: Session, contact_ids: list[int]) -> dict[int, list[str]]:
    """The live labels of each contact, by name, sorted."""
    if not contact_ids:
        return {}
    rows = session.execute(
        select(ContactLabel.contact_id, Label.name, Label.external_id)
        .join(Label, Label.id == ContactLabel.label_id)
        .where(ContactLabel.contact_id.in_(contact_ids), ContactLabel.active, Label.deleted_at.is_(None))
    )
    result: dict[int, set[str]] = {}
    for contact_id, name, external_id in rows:
        result.setdefault(contact_id, set()).add(name or f"label #{external_id}")
    return {contact_id: sorted(names) for contact_id, names in result.items()}


def merge_contact_labels(session: Session, survivor_id: int, duplicate_id: int) -> None:
    """Before two contacts become one: where both have a row for the same label, the survivor's
    row stays and takes the newer state of the two (the same rule as for events); the duplicate's
    is dropped, so moving the rest cannot break the one-row-per-(contact, label) rule."""
    rows = session.scalars(
        select(ContactLabel).where(ContactLabel.contact_id.in_((survivor_id, duplicate_id)))
    ).all()
    kept = {row.label_id: row for row in rows if row.contact_id == survivor_id}
    for row in rows:
        mine = kept.get(row.label_id)
        if row.contact_id != duplicate_id or mine is None:
            continue
        if row.changed_at > mine.changed_at:
            for field in ("active", "changed_at", "changed_by_session", "changed_by_staff", "updated_at"):
                setattr(mine, field, getattr(row, field))
        session.delete(row)
    session.flush()
