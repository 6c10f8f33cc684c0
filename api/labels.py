"""Labels as the team uses them: who has which label now, who gave it, how leads move, and a
segment as CSV. The same queries feed the labels page (``web/labels.py``).

Labels are matched by name, in any letter case, across every gateway session (two WhatsApp
accounts may each have a "Grade A"); deleted labels are not shown.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy import String, cast, func, literal, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from models import Contact, ContactLabel, Label, LabelChange, LabelFlowDay
from models.campaigns import AD, Touch
from models.db import session_scope
from models.labels import ADDED, REMOVED, contacts_with_label, label_ids_named
from pipeline import label_flow as label_flow_rollup
from settings import settings

router = APIRouter(prefix="/api", tags=["labels"])

# A label whose name WAHA has not told us yet shows as "label #<id>".
LABEL_NAME = func.coalesce(Label.name, "label #" + cast(Label.external_id, String))


class StaffCount(BaseModel):
    staff: str
    contacts: int


class LabelOut(BaseModel):
    name: str
    contacts: int  # contacts with the label now
    by_staff: list[StaffCount]  # who gave the label to those contacts
    color_hex: str | None
    sessions: list[str]


class LabelList(BaseModel):
    items: list[LabelOut]
    target_label: str


class LabelChangeOut(BaseModel):
    label: str  # the label's name today
    label_name_then: str | None  # its name when the change happened
    action: str  # added | removed
    at: datetime  # when it happened (the gateway's event time)
    session: str
    account: str | None
    staff: str | None
    cause: str
    applied: bool  # false: it arrived after a newer change and did not alter the state


@router.get("/labels", response_model=LabelList)
def list_labels() -> LabelList:
    """Every live label with how many contacts have it now, and who gave it to them."""
    with session_scope() as session:
        return LabelList(items=label_counts(session), target_label=settings.target_label)


@router.get("/contacts.csv", response_class=StreamingResponse)
def export_segment(label: Annotated[str, Query(min_length=1, max_length=255)]) -> StreamingResponse:
    """The contacts that have ``label`` now, as CSV (a spreadsheet or a mailing tool reads it)."""
    with session_scope() as session:
        if not session.scalars(label_ids_named(label)).first():
            raise HTTPException(404, f"no label named {label!r}")
    filename = "".join(ch if ch.isalnum() else "-" for ch in label.strip()) or "segment"
    return StreamingResponse(
        _segment_csv(label),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="contacts-{filename}.csv"'},
    )


def label_counts(session: Session, *, by_staff: bool = True) -> list[LabelOut]:
    """Every live label with its contacts now; ``by_staff=False`` leaves ``by_staff`` empty (the
    labels page shows only the totals, which the active rows' index counts alone)."""
    labels = session.execute(
        select(Label.id, LABEL_NAME, Label.session, Label.color_hex)
        .where(Label.deleted_at.is_(None))
        .order_by(LABEL_NAME, Label.id)
    ).all()
    # Counted per label id, not per name: (contact_id, label_id) is unique, so count(*) of the
    # active rows is the number of contacts with that label, and no join or DISTINCT is needed.
    # Same-named labels in different sessions are summed below; a contact holding both is then
    # counted twice (rare: two WhatsApp accounts labelling the same person alike).
    name_of = {label_id: name for label_id, name, _, _ in labels}
    totals: dict[str, int] = defaultdict(int)
    per_staff: dict[str, dict[str | None, int]] = defaultdict(lambda: defaultdict(int))
    staff_column = ContactLabel.changed_by_staff if by_staff else literal(None, String)
    staff_rows = session.execute(
        select(ContactLabel.label_id, staff_column, func.count())
        .where(ContactLabel.active)
        .group_by(ContactLabel.label_id, *([staff_column] if by_staff else []))
    )
    for label_id, staff, count in staff_rows:
        name = name_of.get(label_id)
        if name is None:  # a deleted label
            continue
        totals[name] += count
        per_staff[name][staff] += count
    items: dict[str, LabelOut] = {}
    for _, name, session_name, color_hex in labels:
        item = items.setdefault(
            name,
            LabelOut(
                name=name,
                contacts=totals.get(name, 0),
                by_staff=sorted(
                    (
                        StaffCount(staff=staff or "unknown", contacts=count)
                        for staff, count in per_staff.get(name, {}).items()
                        if by_staff
                    ),
                    key=lambda s: (-s.contacts, s.staff),
                ),
                color_hex=color_hex,
                sessions=[],
            ),
        )
        if session_name not in item.sessions:
            item.sessions.append(session_name)
    return sorted(items.values(), key=lambda item: (-item.contacts, item.name.lower()))


def label_history(session: Session, contact_id: int) -> list[LabelChangeOut]:
    rows = session.execute(
        select(LabelChange, LABEL_NAME)
        .join(Label, Label.id == LabelChange.label_id)
        .where(LabelChange.contact_id == contact_id)
        .order_by(LabelChange.occurred_at, LabelChange.id)
    ).all()
    return [
        LabelChangeOut(
            label=name,
            label_name_then=change.label_name,
            action=change.action,
            at=change.occurred_at,
            session=change.session,
            account=change.account,
            staff=change.staff,
            cause=change.cause,
            applied=change.applied,
        )
        for change, name in rows
    ]


@dataclass(frozen=True)
class DayFlow:
    entered: int
    left: int


def label_flow(session: Session, days: int, today: date | None = None) -> tuple[list[date], dict[str, dict]]:
    """Per live label and local day (TIMEZONE), how many contacts were given it and lost it.

    Read from the daily roll-up the labels step keeps (``pipeline.label_flow``): a few rows per
    label and day, not every change of the period."""
    zone = ZoneInfo(settings.timezone)
    today = today or datetime.now(zone).date()
    first = today - timedelta(days=days - 1)
    ids_of: dict[str, list[int]] = defaultdict(list)
    for label_id, name in session.execute(
        select(Label.id, LABEL_NAME).where(Label.deleted_at.is_(None)).order_by(Label.id)
    ):
        ids_of[name].append(label_id)
    name_of = {label_id: name for name, ids in ids_of.items() for label_id in ids}
    counts: dict[tuple[str, date, str], int] = {}
    for label_id, day, action, contacts in session.execute(
        select(LabelFlowDay.label_id, LabelFlowDay.day, LabelFlowDay.action, LabelFlowDay.contacts).where(
            LabelFlowDay.day >= first, LabelFlowDay.contacts > 0
        )
    ):
        name = name_of.get(label_id)
        if name is not None and len(ids_of[name]) == 1:
            counts[(name, day, action)] = contacts
    for name, ids in ids_of.items():
        if len(ids) > 1:  # same-named labels of two sessions: a contact with both counts once
            for day, action, contacts in label_flow_rollup.counted(session, ids, first):
                counts[(name, day, action)] = contacts
    dates = [first + timedelta(days=i) for i in range(days)]
    flow: dict[str, dict[date, DayFlow]] = {}
    for name in {key[0] for key in counts}:
        flow[name] = {
            day: DayFlow(counts.get((name, day, ADDED), 0), counts.get((name, day, REMOVED), 0))
            for day in dates
        }
    return dates, flow


@dataclass(frozen=True)
class StaffQuality:
    staff: str
    labels_given: int
    contacts: int
    reached_target: int

    @property
    def share(self) -> float:
        return self.reached_target / self.contacts if self.contacts else 0.0


def staff_quality(
    session: Session, target: str, days: int = 14, today: date | None = None
) -> list[StaffQuality]:
    """Per staff member, over the last ``days`` local days (as ``label_flow``): labels given,
    contacts labelled, and how many of those contacts were ever given the target label (by
    anyone, at any time)."""
    zone = ZoneInfo(settings.timezone)
    today = today or datetime.now(zone).date()
    start = datetime.combine(today - timedelta(days=days - 1), datetime.min.time(), zone)
    reached = (
        select(LabelChange.contact_id)
        .where(LabelChange.action == ADDED, LabelChange.label_id.in_(label_ids_named(target)))
        .distinct()
    )
    staff = func.coalesce(LabelChange.staff, "unknown")
    rows = session.execute(
        select(
            staff,
            func.count(),
            func.count(func.distinct(LabelChange.contact_id)),
            func.count(func.distinct(LabelChange.contact_id)).filter(LabelChange.contact_id.in_(reached)),
        )
        .where(LabelChange.action == ADDED, LabelChange.occurred_at >= start)
        .group_by(staff)
    )
    result = [StaffQuality(name, given, contacts, hits) for name, given, contacts, hits in rows]
    return sorted(result, key=lambda s: (-s.labels_given, s.staff))


@dataclass(frozen=True)
class LeadSource:
    source: str
    contacts: int
    with_target: int


def lead_sources(session: Session, target: str) -> list[LeadSource]:
    """Contacts per lead source (``ad:<id>`` or ``organic``) and how many have the target label."""
    rows = session.execute(
        select(
            Contact.lead_source,
            func.count(),
            func.count().filter(Contact.id.in_(contacts_with_label(target))),
        )
        .where(Contact.merged_into_id.is_(None))
        .group_by(Contact.lead_source)
    )
    result = [LeadSource(source, contacts, hits) for source, contacts, hits in rows]
    return sorted(result, key=lambda s: (-s.contacts, s.source))


def ad_headlines(session: Session, sources: list[str]) -> dict[str, str]:
    """The headline of each ad lead source (``<source_type>:<source_id>``) as its latest touch
    gave it (a shop may rename an ad); an ad whose referral carried no headline is left out."""
    ids = {source.split(":", 1)[1]: source for source in sources if ":" in source}
    if not ids:
        return {}
    rows = session.execute(
        select(Touch.campaign, Touch.name)
        .where(Touch.kind == AD, Touch.campaign.in_([f"ad:{i}" for i in ids]))
        .order_by(Touch.occurred_at, Touch.id)
    )
    found: dict[str, str] = {}
    for campaign, name in rows:
        source_id = campaign.split(":", 1)[1]
        if name != f"ad {source_id}":  # the touch's stand-in name when there was no headline
            found[ids[source_id]] = name
    return found


@dataclass(frozen=True)
class SegmentMember:
    id: int
    name: str | None
    phone: str | None
    lead_source: str
    labelled_at: datetime
    labelled_by: str | None
    opted_out_at: datetime | None


def _segment_ids(label: str, search: str, after: int = 0) -> Select:
    """The ids of the contacts with ``label`` now (above ``after``), those whose "name phone"
    contains ``search`` (lower case) if given."""
    wanted = select(ContactLabel.contact_id).where(
        ContactLabel.active, ContactLabel.label_id.in_(label_ids_named(label))
    )
    ids = select(Contact.id).where(
        Contact.id.in_(wanted), Contact.merged_into_id.is_(None), Contact.id > after
    )
    if search:
        text = func.lower(func.coalesce(Contact.name, "") + " " + func.coalesce(Contact.phone_e164, ""))
        ids = ids.where(text.contains(search, autoescape=True))
    return ids


def segment_size(session: Session, label: str, search: str = "") -> int:
    """How many contacts ``segment`` lists in all (every page)."""
    return session.scalar(select(func.count()).select_from(_segment_ids(label, search).subquery())) or 0


def segment(
    session: Session, label: str, *, after: int = 0, limit: int | None = None, search: str = ""
) -> list[SegmentMember]:
    """Contacts with ``label`` now, by id, with when and by whom it was given: at most ``limit``
    contacts with an id above ``after``, those whose "name phone" contains ``search`` (lower
    case) if given."""
    label_ids = label_ids_named(label)
    ids = _segment_ids(label, search, after)
    if limit is not None:
        # A contact may hold two same-named labels (two sessions): limit contacts, not rows.
        ids = ids.order_by(Contact.id).limit(limit)
    query = (
        select(Contact, ContactLabel.changed_at, ContactLabel.changed_by_staff)
        .join(ContactLabel, ContactLabel.contact_id == Contact.id)
        .where(ContactLabel.active, ContactLabel.label_id.in_(label_ids), Contact.id.in_(ids))
        .order_by(Contact.id, ContactLabel.changed_at.desc())
    )
    members: dict[int, SegmentMember] = {}
    for contact, changed_at, staff in session.execute(query):
        members.setdefault(
            contact.id,
            SegmentMember(
                contact.id,
                contact.name,
                contact.phone_e164,
                contact.lead_source,
                changed_at,
                staff,
                contact.opted_out_at,
            ),
        )
    return list(members.values())


_CSV_COLUMNS = ("id", "name", "phone", "lead_source", "labelled_at", "labelled_by", "opted_out_at")
_CSV_BATCH = 1000


def _segment_csv(label: str) -> Iterator[str]:
    yield _csv_line(_CSV_COLUMNS)
    after = 0
    while True:
        with session_scope() as session:
            batch = segment(session, label, after=after, limit=_CSV_BATCH)
        for m in batch:
            yield _csv_line(
                (
                    m.id,
                    spreadsheet_cell(m.name),
                    m.phone or "",
                    m.lead_source,
                    m.labelled_at.isoformat(),
                    spreadsheet_cell(m.labelled_by),
                    m.opted_out_at.isoformat() if m.opted_out_at else "",
                )
            )
        if not batch:
            return
        after = batch[-1].id


def _csv_line(values: tuple[object, ...]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow(values)
    return buffer.getvalue()


def spreadsheet_cell(text: str | None) -> str:
    """Free text for a spreadsheet: a leading = + - @ would run as a formula (CSV injection)."""
    if not text:
        return ""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@") else text
