"""The label rules: WAHA label events become the label catalogue, each contact's active labels,
and the history of every change.

- Only personal chats count (``…@c.us``, ``…@s.whatsapp.net``, ``…@lid``); a group, broadcast
  list, status or newsletter chat is ignored and counted (``wacrm_waha_chats_ignored_total``).
- The chat is resolved to a contact through identity resolution, so ``6281…@c.us`` and the order
  system's ``0812…`` are one person; an ``@lid`` is an opaque identity, never a phone.
- The catalogue is keyed by (session, WAHA label id): a rename keeps the id, so history stays
  with the label. ``label.deleted`` takes the label away from everyone who had it.
- A change made through the API (``pipeline.label_edits``) that WAHA echoes back is not
  recorded twice: the state it reports is already there, marked as set by the API.
- Arrival order does not matter: per (contact, label) the newest event time wins, so an old
  "added" that arrives after a newer "removed" is kept in history but does not bring the label
  back; per label, the newest upsert/delete wins.

Lock order, the same in every step so two workers cannot deadlock: the contact (taken by
identity resolution), then the label, then the contact's label row.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from domain import chat_ids
from models import ContactLabel, Label
from models.base import utcnow
from models.db import dialect_insert
from models.labels import ADDED, REMOVED
from observability.metrics import CHATS_IGNORED, LABEL_CHANGES
from pipeline import crm_sync, identity, label_flow
from pipeline.label_edits import API_SESSION

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WahaEvent:
    """A stored WAHA envelope and what every step needs from it."""

    name: str
    session: str
    account: str | None  # the WhatsApp account of the session (me.id)
    staff: str | None  # who acted: metadata.staff/agent if the session says, else the account name
    occurred_at: datetime
    payload: dict[str, Any]

    @classmethod
    def of(cls, stored: dict[str, Any]) -> WahaEvent:
        envelope = stored["envelope"]
        me = envelope.get("me") or {}
        metadata = envelope.get("metadata") or {}
        staff = metadata.get("staff") or metadata.get("agent") or me.get("pushName") or envelope["session"]
        return cls(
            name=envelope["event"],
            session=envelope["session"],
            account=me.get("id"),
            staff=str(staff)[:255],
            occurred_at=datetime.fromisoformat(stored["occurred_at"]),
            payload=envelope["payload"],
        )


def person_in(event: WahaEvent, chat_id: str) -> identity.Sighting | None:
    """Who a chat id names, or None (counted) for a chat that is not a person."""
    chat = chat_ids.parse(chat_id)
    if chat.kind == chat_ids.PHONE:
        return identity.from_whatsapp(chat.value)
    if chat.kind == chat_ids.LID:
        return identity.Sighting(identities=[identity.Identity(identity.LID, chat.value)])
    CHATS_IGNORED.labels(event.name, chat.kind).inc()
    log.info("ignored a chat that is not a person", extra={"event": event.name, "chat_kind": chat.kind})
    return None


def record_label_upsert(session: Session, stored: dict[str, Any]) -> None:
    """A label was created or changed (renamed, recoloured): newest event time wins."""
    event = WahaEvent.of(stored)
    label = _locked_label(session, event, str(event.payload["id"]))
    if label.as_of is not None and event.occurred_at < label.as_of:
        return
    renamed = label.name is not None and label.name != str(event.payload["name"])[:255]
    label.name = str(event.payload["name"])[:255]
    label.color, label.color_hex = _color(event.payload)
    label.deleted_at = None
    label.as_of = label.updated_at = event.occurred_at
    if renamed:  # the CRM's tags carry the name
        holders = select(ContactLabel.contact_id).where(
            ContactLabel.label_id == label.id, ContactLabel.active
        )
        for contact_id in session.scalars(holders):
            crm_sync.queue_sync(session, contact_id, "labels")


def record_label_deleted(session: Session, stored: dict[str, Any]) -> None:
    """A label was deleted: gone from the catalogue and from every contact that had it then."""
    event = WahaEvent.of(stored)
    label = _locked_label(session, event, str(event.payload["id"]))
    if label.as_of is not None and event.occurred_at < label.as_of:
        return
    if event.payload.get("name"):
        label.name = str(event.payload["name"])[:255]
    label.deleted_at = label.as_of = label.updated_at = event.occurred_at
    holders = session.scalars(
        select(ContactLabel)
        .where(
            ContactLabel.label_id == label.id,
            ContactLabel.active,
            ContactLabel.changed_at <= event.occurred_at,
        )
        .order_by(ContactLabel.id)
        .with_for_update(key_share=True)
    ).all()
    for row in holders:
        _history(session, event, row.contact_id, label, REMOVED, applied=True)
        _set(row, event, active=False)
        crm_sync.queue_sync(session, row.contact_id, "labels")


def record_chat_added(session: Session, stored: dict[str, Any]) -> None:
    _associate(session, WahaEvent.of(stored), ADDED)


def record_chat_deleted(session: Session, stored: dict[str, Any]) -> None:
    _associate(session, WahaEvent.of(stored), REMOVED)


def _associate(session: Session, event: WahaEvent, action: str) -> None:
    sighting = person_in(event, str(event.payload["chatId"]))
    if sighting is None:
        return
    contact = identity.resolve_contact(session, sighting)  # locked until commit
    label = _label(session, event, str(event.payload["labelId"]), event.payload.get("label"))
    row = session.scalars(
        select(ContactLabel)
        .where(ContactLabel.contact_id == contact.id, ContactLabel.label_id == label.id)
        .with_for_update()
    ).first()
    if row is not None and row.changed_by_session == API_SESSION and row.active == (action == ADDED):
        # The state was set through our API and WAHA reports it back (the echo of the mirror's
        # PUT): already recorded, with who did it. Decided under the row's lock, by state.
        LABEL_CHANGES.labels(action, "echo").inc()
        return
    applied = row is None or event.occurred_at >= row.changed_at
    _history(session, event, contact.id, label, action, applied=applied)
    LABEL_CHANGES.labels(action, "applied" if applied else "stale").inc()
    if not applied:
        log.info("label event older than the current state", extra={"event": event.name})
        return
    if row is None:
        row = ContactLabel(contact_id=contact.id, label_id=label.id)
        session.add(row)
    _set(row, event, active=action == ADDED)
    session.flush()
    crm_sync.queue_sync(session, contact.id, "labels")


def _label(session: Session, event: WahaEvent, external_id: str, described: Any) -> Label:
    """The catalogue entry for a label an association names, created if this is its first
    mention. Not locked: associations of one label must not queue behind each other."""
    name = described.get("name") if isinstance(described, dict) else None
    insert = dialect_insert(session.get_bind().dialect.name)
    color, color_hex = _color(described if isinstance(described, dict) else {})
    session.execute(
        insert(Label)
        .values(
            session=event.session,
            external_id=external_id,
            name=str(name)[:255] if name else None,
            color=color,
            color_hex=color_hex,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["session", "external_id"])
    )
    if name:
        # Only fills a name nobody has told us yet; a label.upsert stays the authority.
        session.execute(
            update(Label)
            .where(Label.session == event.session, Label.external_id == external_id, Label.name.is_(None))
            .values(name=str(name)[:255])
        )
    return session.scalars(
        select(Label).where(Label.session == event.session, Label.external_id == external_id)
    ).one()


def _locked_label(session: Session, event: WahaEvent, external_id: str) -> Label:
    _label(session, event, external_id, None)
    return session.scalars(
        select(Label)
        .where(Label.session == event.session, Label.external_id == external_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def _history(
    session: Session, event: WahaEvent, contact_id: int, label: Label, action: str, *, applied: bool
) -> None:
    label_flow.record(
        session,
        contact_id=contact_id,
        label=label,
        action=action,
        occurred_at=event.occurred_at,
        gateway_session=event.session,
        account=(event.account or None) and str(event.account)[:128],
        staff=event.staff,
        cause=event.name,
        applied=applied,
    )


def _set(row: ContactLabel, event: WahaEvent, *, active: bool) -> None:
    row.active = active
    row.changed_at = event.occurred_at
    row.changed_by_session = event.session
    row.changed_by_staff = event.staff
    row.updated_at = utcnow()


_HEX_COLOR = re.compile(r"#[0-9a-fA-F]{3,8}")


def _color(described: dict[str, Any]) -> tuple[int | None, str | None]:
    color = described.get("color")
    color_hex = described.get("colorHex")
    return (
        color if isinstance(color, int) and not isinstance(color, bool) else None,
        color_hex if isinstance(color_hex, str) and _HEX_COLOR.fullmatch(color_hex) else None,
    )
