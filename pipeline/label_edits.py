"""A person adds or takes away a contact's label through the API (the inbox's panel calls the
same route), and the WAHA mirror that follows.

- **Where the label lives.** A label is keyed by (gateway session, gateway id), as WAHA's are.
  When the contact's newest conversation is on a WAHA channel, the label is that session's:
  an existing one of that name, or a new row whose id is a placeholder (``new:…``) until the
  mirror task has created the label in WAHA and adopted WAHA's id (``adopt``). Otherwise (Cloud
  API: no label API) the label is kept in our own catalogue, session ``api``, and never leaves.
- **Recorded as a WAHA event is.** The contact's label row is set and a ``label_changes`` row
  is written (staff = the signed-in login, cause ``api``), so the figures, the label flows and
  the panel's history see it; the CRM's tags follow (``crm_sync``).
- **By state.** Adding a label the contact has, or taking away one they do not have, changes
  nothing and writes nothing. The contact's state row is marked ``changed_by_session = "api"``:
  WAHA's webhook echoing our own PUT back finds the state it reports already there, set by us,
  and is not recorded again (``pipeline.labels``). Both run under the contact lock and the row's
  ``FOR UPDATE``, so this is never a check-then-set.

Lock order (pipeline/locks.py): the contact, then its label rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from models import Channel, ContactLabel, Conversation, Label, LabelChange
from models.base import utcnow
from models.db import dialect_insert
from models.labels import ADDED, REMOVED
from pipeline import crm_sync, label_flow, locks, rich_messages
from queueing import publish
from queueing.after_commit import publish_after_commit
from settings import settings

API_SESSION = "api"  # our own catalogue (Cloud API channels), and the mark of a state set by the API
CAUSE = "api"  # label_changes.cause of a change made through the API
NEW_PREFIX = "new:"  # a label made here that WAHA has not given an id yet
NAME_MAX = 100  # the longest label name taken (WhatsApp's label names are short)


@dataclass(frozen=True)
class Target:
    """Where a contact's labels live: a WAHA session (mirrored) or our own catalogue."""

    session: str
    channel_id: int | None  # the WAHA channel (None: the settings channel)
    waha: bool


@dataclass(frozen=True)
class Change:
    label: str  # the label's name as stored
    changed: bool  # false: the contact already had it (add) or did not have it (remove)
    mirrored: bool  # a WAHA mirror was queued


def target_of(session: Session, contact_id: int) -> Target:
    """The channel of the contact's newest conversation decides (the chat the team works in)."""
    found = session.execute(
        select(Conversation.channel_id)
        .where(Conversation.contact_id == contact_id)
        .order_by(Conversation.last_message_at.desc(), Conversation.id.desc())
        .limit(1)
    ).first()
    channel_id = found.channel_id if found else None
    if found is None or rich_messages.gateway_kind(session, channel_id) != "waha":
        return Target(API_SESSION, None, waha=False)
    channel = session.get(Channel, channel_id) if channel_id is not None else None
    name = channel.session if channel is not None else settings.waha_session
    return Target(name or "default", channel_id, waha=True)


def add(session: Session, contact_id: int, name: str, actor: str) -> Change:
    """Give the contact the label ``name`` (found by name in any letter case, else created)."""
    contact = locks.contact(session, contact_id)
    if contact is None:
        raise LookupError(f"no contact {contact_id}")
    held = _held(session, contact.id, name)
    if held:
        return Change(held[0][1].display_name, changed=False, mirrored=False)
    target = target_of(session, contact.id)
    label = _label_for(session, target, name)
    row = _locked_row(session, contact.id, label.id)
    _set(session, row, label, ADDED, actor)
    return Change(label.display_name, changed=True, mirrored=_mirror(session, contact.id, target))


def remove(session: Session, contact_id: int, name: str, actor: str) -> Change:
    """Take the label ``name`` away from the contact (every live label of that name it has)."""
    contact = locks.contact(session, contact_id)
    if contact is None:
        raise LookupError(f"no contact {contact_id}")
    held = _held(session, contact.id, name)
    for row, label in held:
        _set(session, row, label, REMOVED, actor)
    if not held:
        return Change(name.strip(), changed=False, mirrored=False)
    target = target_of(session, contact.id)
    return Change(held[0][1].display_name, changed=True, mirrored=_mirror(session, contact.id, target))


def known_names(session: Session) -> list[str]:
    """Every live label's name, once each (what the inbox offers to pick from)."""
    names = session.scalars(select(Label.name).where(Label.deleted_at.is_(None), Label.name.is_not(None)))
    return sorted({n for n in names if n}, key=str.lower)


def _held(session: Session, contact_id: int, name: str) -> list[tuple[ContactLabel, Label]]:
    """The contact's active rows for live labels of this name, locked."""
    rows = session.execute(
        select(ContactLabel, Label)
        .join(Label, Label.id == ContactLabel.label_id)
        .where(
            ContactLabel.contact_id == contact_id,
            ContactLabel.active,
            Label.deleted_at.is_(None),
            func.lower(Label.name) == name.strip().lower(),
        )
        .order_by(ContactLabel.id)
        .with_for_update(of=ContactLabel)
    ).all()
    return [(row, label) for row, label in rows]


def _label_for(session: Session, target: Target, name: str) -> Label:
    """The target session's label of that name; else a new one (its id a placeholder until WAHA
    gives one), spelt as a live label of that name elsewhere is, so the figures show one name."""
    wanted = name.strip()
    same_name = func.lower(Label.name) == wanted.lower()
    found = session.scalars(
        select(Label)
        .where(Label.session == target.session, same_name, Label.deleted_at.is_(None))
        .order_by(Label.external_id.startswith(NEW_PREFIX), Label.id)
        .limit(1)
    ).first()
    if found is not None:
        return found
    spelt = session.scalar(
        select(Label.name).where(same_name, Label.deleted_at.is_(None)).order_by(Label.id).limit(1)
    )
    local_id = NEW_PREFIX + hashlib.sha1(wanted.lower().encode()).hexdigest()[:40]
    insert = dialect_insert(session.get_bind().dialect.name)
    now = utcnow()
    # A unique insert: two people giving a new label at once make one label.
    session.execute(
        insert(Label)
        .values(
            session=target.session, external_id=local_id, name=spelt or wanted, created_at=now, updated_at=now
        )
        .on_conflict_do_nothing(index_elements=["session", "external_id"])
    )
    label = session.scalars(
        select(Label)
        .where(Label.session == target.session, Label.external_id == local_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if label.deleted_at is not None:  # a label made here once, deleted since: back again
        label.deleted_at, label.name, label.updated_at = None, spelt or wanted, now
    return label


def _locked_row(session: Session, contact_id: int, label_id: int) -> ContactLabel:
    insert = dialect_insert(session.get_bind().dialect.name)
    session.execute(
        insert(ContactLabel)
        .values(
            contact_id=contact_id, label_id=label_id, active=False, changed_at=utcnow(), updated_at=utcnow()
        )
        .on_conflict_do_nothing(index_elements=["contact_id", "label_id"])
    )
    return session.scalars(
        select(ContactLabel)
        .where(ContactLabel.contact_id == contact_id, ContactLabel.label_id == label_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def _set(session: Session, row: ContactLabel, label: Label, action: str, actor: str) -> None:
    now = utcnow()
    row.active = action == ADDED
    row.changed_at = row.updated_at = now
    row.changed_by_session = API_SESSION
    row.changed_by_staff = actor[:255]
    label_flow.record(
        session,
        contact_id=row.contact_id,
        label=label,
        action=action,
        occurred_at=now,
        gateway_session=label.session,
        account=None,
        staff=actor[:255],
        cause=CAUSE,
        applied=True,
    )
    session.flush()
    crm_sync.queue_sync(session, row.contact_id, "labels")


def _mirror(session: Session, contact_id: int, target: Target) -> bool:
    if not target.waha:
        return False
    publish_after_commit(session, "label_mirrors", contact_id, publish.mirror_labels)
    return True


# The mirror task's side (workers/labels.py).


@dataclass(frozen=True)
class Wanted:
    """A label the contact's WAHA chat should have."""

    label_id: int
    external_id: str | None  # None: not in WAHA yet
    name: str


def wanted_labels(session: Session, contact_id: int, target: Target) -> list[Wanted]:
    """The contact's live labels in the target session: the chat's whole set in WAHA."""
    rows = session.execute(
        select(Label.id, Label.external_id, Label.name)
        .join(ContactLabel, ContactLabel.label_id == Label.id)
        .where(
            ContactLabel.contact_id == contact_id,
            ContactLabel.active,
            Label.session == target.session,
            Label.deleted_at.is_(None),
        )
        .order_by(Label.id)
    ).all()
    return [
        Wanted(label_id, None if external_id.startswith(NEW_PREFIX) else external_id, name or external_id)
        for label_id, external_id, name in rows
    ]


def adopt(session: Session, label_id: int, external_id: str) -> None:
    """WAHA made our new label under ``external_id``: the placeholder takes that id. If WAHA's
    ``label.upsert`` for it was recorded first (a row with that id), ours is folded into it."""
    holders = session.scalars(
        select(ContactLabel.contact_id)
        .where(ContactLabel.label_id == label_id)
        .order_by(ContactLabel.contact_id)
    ).all()
    for contact_id in holders:  # the lock order: contacts first, in id order
        locks.contact(session, contact_id)
    ours = session.get(Label, label_id, with_for_update=True, populate_existing=True)
    if ours is None or not ours.external_id.startswith(NEW_PREFIX):
        return  # adopted already (a retried task)
    theirs = session.scalars(
        select(Label).where(Label.session == ours.session, Label.external_id == external_id).with_for_update()
    ).first()
    if theirs is None:
        ours.external_id, ours.updated_at = external_id, utcnow()
        return
    rows = session.scalars(
        select(ContactLabel).where(ContactLabel.label_id.in_((ours.id, theirs.id))).with_for_update()
    ).all()
    kept = {row.contact_id: row for row in rows if row.label_id == theirs.id}
    for row in rows:
        if row.label_id != ours.id:
            continue
        other = kept.get(row.contact_id)
        if other is None:
            row.label_id = theirs.id
            continue
        if row.changed_at >= other.changed_at:
            for field in ("active", "changed_at", "changed_by_session", "changed_by_staff", "updated_at"):
                setattr(other, field, getattr(row, field))
        session.delete(row)
    session.flush()
    label_flow.merge_labels(session, ours.id, theirs.id)
    session.execute(update(LabelChange).where(LabelChange.label_id == ours.id).values(label_id=theirs.id))
    theirs.deleted_at = None
    session.delete(ours)
    session.flush()
