"""The /inbox queue: which conversations a tab lists, in what order, one page at a time.

Order: waiting for a person first (hot, then warm, then the rest), then the conversations
nobody is waiting on; within each band, the most recent message first. Paging is by key (the
last row's band, last_message_at and id), never by offset, so page 500 costs what page 1 costs.
Only the conversations of the caller's teams are listed (``pipeline.teams``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Select, and_, exists, func, or_, select, tuple_
from sqlalchemy.orm import Session

from api.auth import Principal
from domain import phones
from models import Channel, Contact, Conversation, Message, RoutingDecision
from models.channels import SETTINGS_CHANNEL
from models.conversations import INBOUND
from models.labels import active_labels, contacts_with_label
from models.routing import ADMIN, SUPERVISOR
from pipeline import channels
from pipeline.teams import conversations_of_teams
from settings import settings

MINE, TEAM, UNASSIGNED, ALL, CLOSED = "mine", "team", "unassigned", "all", "closed"
TABS = (MINE, TEAM, UNASSIGNED, ALL, CLOSED)
PAGE_SIZE = 50
HUMAN = "human"


@dataclass(frozen=True)
class Filters:
    tab: str = TEAM
    channel: int | None = None
    label: str | None = None
    lead_class: str | None = None
    agent: str | None = None
    out_of_hours: bool = False
    q: str = ""


@dataclass
class Row:
    conversation_id: int
    contact_id: int
    name: str | None
    phone: str | None
    channel: str
    lead_class: str | None
    assigned_agent: str | None
    owner_agent: str | None
    last_message_at: datetime
    awaiting_since: datetime | None
    closed_at: datetime | None
    respond_by: datetime | None = None
    unread: int = 0
    last_text: str | None = None
    labels: list[str] = field(default_factory=list)


@dataclass
class Page:
    rows: list[Row]
    next_cursor: str | None


def tabs_for(principal: Principal) -> tuple[str, ...]:
    """All is for supervisors and admins; agents see their teams' conversations."""
    return TABS if principal.role in (ADMIN, SUPERVISOR) else tuple(t for t in TABS if t != ALL)


# The bands of the queue, in order; a conversation is in exactly one of them.
WAITING_HOT, WAITING_WARM, WAITING_OTHER, NOT_WAITING = 0, 1, 2, 3
BANDS = (WAITING_HOT, WAITING_WARM, WAITING_OTHER, NOT_WAITING)


def _band(band: int):
    waiting = Conversation.awaiting_reply_since.is_not(None)
    if band == WAITING_HOT:
        return and_(waiting, Contact.lead_class == "hot")
    if band == WAITING_WARM:
        return and_(waiting, Contact.lead_class == "warm")
    if band == WAITING_OTHER:
        return and_(waiting, or_(Contact.lead_class.is_(None), Contact.lead_class.not_in(("hot", "warm"))))
    return Conversation.awaiting_reply_since.is_(None)


def query(
    principal: Principal, filters: Filters, band: int, after: tuple[datetime, int] | None, limit: int
) -> Select:
    """One band of the tab, newest first, after the key ``after`` (last_message_at or closed_at,
    id). Each band is read on its own so that a partial index gives its rows in order: sorting
    the whole queue by band would read every open conversation for each page."""
    moment = Conversation.closed_at if filters.tab == CLOSED else Conversation.last_message_at
    stmt = (
        select(Conversation, Contact, moment.label("moment"))
        .join(Contact, Contact.id == Conversation.contact_id)
        .order_by(moment.desc(), Conversation.id.desc())
        .limit(limit)
    )
    if filters.tab == CLOSED:
        stmt = stmt.where(Conversation.closed_at.is_not(None))
    else:
        stmt = stmt.where(Conversation.closed_at.is_(None), _band(band))
    if principal.teams is not None:
        stmt = stmt.where(Conversation.id.in_(conversations_of_teams(principal.teams)))
    me = principal.login
    if filters.tab == MINE:
        stmt = stmt.where(or_(Conversation.owner_agent == me, Conversation.assigned_agent == me))
    elif filters.tab == UNASSIGNED:
        stmt = stmt.where(Conversation.owner_agent.is_(None), Conversation.assigned_agent.is_(None))
    if filters.channel is not None:
        stmt = stmt.where(
            Conversation.channel_id.is_(None)
            if filters.channel == 0
            else Conversation.channel_id == filters.channel
        )
    if filters.label:
        stmt = stmt.where(Conversation.contact_id.in_(contacts_with_label(filters.label)))
    if filters.lead_class:
        stmt = stmt.where(Contact.lead_class == filters.lead_class)
    if filters.agent:
        stmt = stmt.where(
            or_(Conversation.owner_agent == filters.agent, Conversation.assigned_agent == filters.agent)
        )
    if filters.out_of_hours:
        stmt = stmt.where(
            exists().where(
                RoutingDecision.conversation_id == Conversation.id,
                RoutingDecision.out_of_hours,
                RoutingDecision.needs_reply,
            )
        )
    if filters.q.strip():
        stmt = stmt.where(_search(filters.q.strip()))
    if after is not None:
        stmt = stmt.where(tuple_(moment, Conversation.id) < after)
    return stmt


def _search(q: str):
    """Name, phone (any common spelling) or the text of a message."""
    like = f"%{q.lower()}%"
    conditions = [
        func.lower(Contact.name).like(like),
        exists().where(Message.conversation_id == Conversation.id, func.lower(Message.text).like(like)),
    ]
    digits = "".join(ch for ch in q if ch.isdigit())
    if len(digits) >= 4:
        parsed = phones.from_user_input(q, settings.default_region)
        conditions.append(Contact.phone_e164.like(f"%{parsed.e164 if parsed.is_valid else digits}%"))
    return or_(*conditions)


def page(session: Session, principal: Principal, filters: Filters, cursor: str | None = None) -> Page:
    first, after = BANDS[0], None
    if cursor:
        first, moment, last_id = _decode(cursor)
        after = (moment, last_id)
    bands = (0,) if filters.tab == CLOSED else tuple(b for b in BANDS if b >= first)
    found: list[tuple[int, Conversation, Contact, datetime]] = []
    for band in bands:
        wanted = PAGE_SIZE + 1 - len(found)
        rows = session.execute(query(principal, filters, band, after if band == first else None, wanted))
        found += [(band, c, k, moment) for c, k, moment in rows]
        if len(found) > PAGE_SIZE:
            break
    more = len(found) > PAGE_SIZE
    found = found[:PAGE_SIZE]
    names = channels.names(session)
    rows = [
        Row(
            conversation_id=c.id,
            contact_id=k.id,
            name=k.name,
            phone=k.phone_e164,
            channel=names.get(c.channel_id, SETTINGS_CHANNEL),
            lead_class=k.lead_class,
            assigned_agent=c.assigned_agent,
            owner_agent=c.owner_agent,
            last_message_at=c.last_message_at,
            awaiting_since=c.awaiting_reply_since,
            closed_at=c.closed_at,
        )
        for _, c, k, _ in found
    ]
    _details(session, rows)
    next_cursor = None
    if more and found:
        band, last, _, moment = found[-1]
        next_cursor = f"{band}|{moment.isoformat()}|{last.id}"
    return Page(rows=rows, next_cursor=next_cursor)


def _details(session: Session, rows: list[Row]) -> None:
    """For the page's rows only: respond-by, unread count (customer messages since our last
    reply), the last message's text, the labels. A few grouped queries, not one per row."""
    ids = [r.conversation_id for r in rows]
    if not ids:
        return
    by_id = {r.conversation_id: r for r in rows}
    respond = session.execute(
        select(RoutingDecision.conversation_id, func.min(RoutingDecision.respond_by))
        .join(Conversation, Conversation.id == RoutingDecision.conversation_id)
        .join(Message, Message.id == RoutingDecision.message_id)
        .where(
            RoutingDecision.conversation_id.in_(ids),
            RoutingDecision.responder == HUMAN,
            RoutingDecision.needs_reply,
            Conversation.awaiting_reply_since.is_not(None),
            Message.occurred_at >= Conversation.awaiting_reply_since,
        )
        .group_by(RoutingDecision.conversation_id)
    ).all()
    for conversation_id, respond_by in respond:
        by_id[conversation_id].respond_by = respond_by
    unread = session.execute(
        select(Message.conversation_id, func.count())
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(
            Message.conversation_id.in_(ids),
            Message.direction == INBOUND,
            Conversation.awaiting_reply_since.is_not(None),
            Message.occurred_at >= Conversation.awaiting_reply_since,
        )
        .group_by(Message.conversation_id)
    ).all()
    for conversation_id, count in unread:
        by_id[conversation_id].unread = count
    newest = (
        select(Message.conversation_id, func.max(Message.id).label("id"))
        .where(Message.conversation_id.in_(ids))
        .group_by(Message.conversation_id)
        .subquery()
    )
    for conversation_id, text in session.execute(
        select(Message.conversation_id, Message.text).join(newest, Message.id == newest.c.id)
    ):
        by_id[conversation_id].last_text = text
    labels = active_labels(session, list({r.contact_id for r in rows}))
    grouped: dict[int, list[str]] = defaultdict(list, labels)
    for r in rows:
        r.labels = grouped[r.contact_id]


def _decode(cursor: str) -> tuple[int, datetime, int]:
    try:
        p, t, i = cursor.split("|")
        return int(p), datetime.fromisoformat(t), int(i)
    except ValueError as exc:
        raise ValueError("cursor: not a cursor this page gave out") from exc


def channel_choices(session: Session) -> list[tuple[int, str]]:
    """The channels to filter by (0: the settings channel)."""
    rows = session.execute(select(Channel.id, Channel.name).order_by(Channel.name)).all()
    return [(0, SETTINGS_CHANNEL), *((i, n) for i, n in rows)]
