"""Every label change is written here, with the daily roll-up the labels page's chart reads.

``record`` writes the ``label_changes`` row and notes (label, local day, action, contact). Just
before the caller commits, the notes become ``label_flow_contacts`` rows (one per key, ``ON
CONFLICT DO NOTHING``) and ``label_flow_days`` counters bumped by the number of rows that were
new, all in the same transaction as the changes:

- **Exact.** A counter moves only when a unique row is inserted (or, in a merge, removed), so a
  replayed event, a retry after a rollback, or a second change on the same day cannot count a
  contact twice; a rolled-back transaction drops its notes.
- **At the end, in one order.** The counters are hot rows (every event of a label today bumps
  the same one). Applying them at commit keeps each row locked only for the commit, and taking
  the rows sorted (label, day, action, then the contacts before their counter) means two
  transactions can never wait on each other in a circle.
- **Local days** are those of ``TIMEZONE``, as the chart's. A different ``TIMEZONE`` later needs
  ``rebuild`` (the roll-up does not know the zone it was kept in).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import delete, event, func, select, text
from sqlalchemy.orm import Session, SessionTransaction

from models import Label, LabelChange, LabelFlowContact, LabelFlowDay
from models.db import dialect_insert
from queueing import after_commit
from settings import settings

_KEY = "label_flow"
_ROWS_PER_INSERT = 1000  # SQLite takes at most 32,766 bound values in one statement
Day = tuple[int, date, str]  # label, local day, action
Entry = tuple[int, date, str, int]  # ... and the contact


@dataclass
class _Notes:
    entries: set[Entry] = field(default_factory=set)
    deltas: dict[Day, int] = field(default_factory=lambda: defaultdict(int))


def local_day(at: datetime) -> date:
    return at.astimezone(ZoneInfo(settings.timezone)).date()


def record(
    session: Session,
    *,
    contact_id: int,
    label: Label,
    action: str,
    occurred_at: datetime,
    gateway_session: str,
    account: str | None,
    staff: str | None,
    cause: str,
    applied: bool,
) -> LabelChange:
    """A label given or taken away: its history row, and its place in the roll-up."""
    change = LabelChange(
        contact_id=contact_id,
        label_id=label.id,
        label_name=label.name,
        action=action,
        occurred_at=occurred_at,
        session=gateway_session,
        account=account,
        staff=staff,
        cause=cause,
        applied=applied,
    )
    session.add(change)
    _notes(session).entries.add((label.id, local_day(occurred_at), action, contact_id))
    return change


def merge_contacts(session: Session, survivor_id: int, duplicate_id: int) -> None:
    """Before ``duplicate`` becomes part of ``survivor`` (its changes move to it): its roll-up
    rows become the survivor's, counted once where both were given the same label that day."""
    for noted in _every_level(session):
        noted.entries = {
            (lab, d, a, survivor_id if c == duplicate_id else c) for lab, d, a, c in noted.entries
        }
    notes = _notes(session)
    where = LabelFlowContact.contact_id == duplicate_id
    for label_id, day, action in session.execute(
        select(LabelFlowContact.label_id, LabelFlowContact.day, LabelFlowContact.action).where(where)
    ):
        notes.deltas[(label_id, day, action)] -= 1  # and +1 again if the survivor had no row
        notes.entries.add((label_id, day, action, survivor_id))
    session.execute(delete(LabelFlowContact).where(where))


def merge_labels(session: Session, gone_id: int, kept_id: int) -> None:
    """Before label ``gone`` is folded into ``kept`` (its changes move to it): its roll-up rows
    become ``kept``'s, each contact counted once per day and action."""
    for noted in _every_level(session):
        noted.entries = {(kept_id if lab == gone_id else lab, d, a, c) for lab, d, a, c in noted.entries}
        noted.deltas = defaultdict(int, {key: n for key, n in noted.deltas.items() if key[0] != gone_id})
    notes = _notes(session)
    where = LabelFlowContact.label_id == gone_id
    for day, action, contact_id in session.execute(
        select(LabelFlowContact.day, LabelFlowContact.action, LabelFlowContact.contact_id).where(where)
    ):
        notes.entries.add((kept_id, day, action, contact_id))
    session.execute(delete(LabelFlowContact).where(where))
    session.execute(delete(LabelFlowDay).where(LabelFlowDay.label_id == gone_id))


def rebuild(session: Session) -> None:
    """The roll-up counted again from every ``label_changes`` row (after a bulk load, or when
    ``TIMEZONE`` changed). Takes the tables' locks: writers wait until the caller commits."""
    if session.get_bind().dialect.name == "postgresql":
        # Writers bump the roll-up at their commit: they wait for this one, and no change is
        # written meanwhile that the count below would miss.
        session.execute(text("LOCK TABLE label_changes IN SHARE MODE"))
        session.execute(text("LOCK TABLE label_flow_contacts, label_flow_days IN SHARE ROW EXCLUSIVE MODE"))
    session.execute(delete(LabelFlowDay))
    session.execute(delete(LabelFlowContact))
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(BACKFILL_CONTACTS), {"zone": settings.timezone})
    else:  # SQLite has no time zones: the local day is found here
        keys = {
            (label_id, local_day(at), action, contact_id)
            for label_id, at, action, contact_id in session.execute(
                select(
                    LabelChange.label_id, LabelChange.occurred_at, LabelChange.action, LabelChange.contact_id
                )
            )
        }
        if keys:
            session.execute(
                LabelFlowContact.__table__.insert(),
                [{"label_id": lab, "day": d, "action": a, "contact_id": c} for lab, d, a, c in sorted(keys)],
            )
    session.execute(text(BACKFILL_DAYS))


# Also the migration's backfill (0024), which keeps its own copy.
BACKFILL_CONTACTS = """
    INSERT INTO label_flow_contacts (label_id, day, action, contact_id)
    SELECT DISTINCT label_id, CAST(timezone(:zone, occurred_at) AS date), action, contact_id
    FROM label_changes
"""
BACKFILL_DAYS = """
    INSERT INTO label_flow_days (label_id, day, action, contacts)
    SELECT label_id, day, action, count(*) FROM label_flow_contacts GROUP BY label_id, day, action
"""


def _notes(session: Session) -> _Notes:
    """The notes of the savepoint now open (or of the transaction itself): a savepoint rolled
    back takes back only its own notes."""
    levels: dict[SessionTransaction | None, _Notes] | None = session.info.get(_KEY)
    if levels is None:
        levels = session.info[_KEY] = {}
        if not session.info.get(f"{_KEY}.listening"):
            session.info[f"{_KEY}.listening"] = True
            event.listen(session, "before_commit", _apply)
            event.listen(session, "after_soft_rollback", _rolled_back)
            event.listen(session, "after_transaction_end", _ended)
    return levels.setdefault(session.get_nested_transaction(), _Notes())


def _every_level(session: Session) -> list[_Notes]:
    return list((session.info.get(_KEY) or {}).values())


def _rolled_back(session: Session, transaction: SessionTransaction) -> None:
    boundary = after_commit.rolled_back_savepoint(transaction)
    levels = session.info.get(_KEY) or {}
    if boundary is None:
        return  # the transaction itself: _ended drops everything
    for level in [level for level in levels if after_commit.within(level, boundary)]:
        del levels[level]


def _ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_KEY, None)


def _apply(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint released: its notes wait for the transaction's own commit
    notes = _Notes()
    for level in (session.info.pop(_KEY, None) or {}).values():
        notes.entries |= level.entries
        for key, n in level.deltas.items():
            notes.deltas[key] += n
    if not (notes.entries or notes.deltas):
        return
    insert = dialect_insert(session.get_bind().dialect.name)
    contacts: dict[Day, list[int]] = defaultdict(list)
    for label_id, day, action, contact_id in sorted(notes.entries):
        contacts[(label_id, day, action)].append(contact_id)
    deltas = defaultdict(int, notes.deltas)
    for key in sorted(set(contacts) | set(deltas)):
        label_id, day, action = key
        for start in range(0, len(contacts[key]), _ROWS_PER_INSERT):
            rows = [
                {"label_id": label_id, "day": day, "action": action, "contact_id": c}
                for c in contacts[key][start : start + _ROWS_PER_INSERT]
            ]
            deltas[key] += session.execute(
                insert(LabelFlowContact).values(rows).on_conflict_do_nothing()
            ).rowcount
        if deltas[key]:
            bump = insert(LabelFlowDay).values(
                label_id=label_id, day=day, action=action, contacts=deltas[key]
            )
            session.execute(
                bump.on_conflict_do_update(
                    index_elements=["label_id", "day", "action"],
                    set_={"contacts": LabelFlowDay.__table__.c.contacts + bump.excluded.contacts},
                )
            )


def counted(session: Session, label_ids: list[int], first: date) -> list[tuple[date, str, int]]:
    """Distinct contacts per day and action from ``first`` across ``label_ids`` together (two
    same-named labels in two sessions: a contact with both counts once)."""
    day, action = LabelFlowContact.day, LabelFlowContact.action
    rows = session.execute(
        select(day, action, func.count(func.distinct(LabelFlowContact.contact_id)))
        .where(LabelFlowContact.label_id.in_(label_ids), day >= first)
        .group_by(day, action)
    )
    return [(d, a, n) for d, a, n in rows]
