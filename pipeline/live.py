"""What the inbox pages are told live: record changes turned into events (docs/live.md).

One listener on every session of the process (``install``, called by the worker and the API at
start) looks at what each flush wrote, so every path that records a message, assigns, takes
over, closes or reopens a conversation, or changes a human routing decision is covered, however
it got there, with no call to remember in each of them:

- a new ``Message``: ``message``;
- a ``Conversation`` whose ``assigned_agent``, ``owner_agent`` or ``closed_at`` changed:
  ``conversation``;
- a new ``RoutingDecision`` for a human, one whose responder, agent or need of a reply changed,
  or a conversation with a human decision that our reply took off the queue: ``queue``;
- a ``ContactLabel`` given or taken away (the panel, the API, a WAHA label event): ``label``,
  once for each conversation of the contact, so every page showing the contact hears of it.

Delivery ticks are written by a bulk UPDATE that the ORM does not see: ``receipts`` calls
``status_changed`` with the rows it moved. Each event carries the conversation's team
(``teams.conversation_team``) and goes to the Redis Stream only after the outermost commit
(``queueing.after_commit``): a rolled-back change is never announced.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

from domain.replies import HUMAN
from models import ContactLabel, Conversation, Message, RoutingDecision
from pipeline import teams
from queueing import live
from queueing.after_commit import publish_after_commit

AFTER_COMMIT_KEY = "live_events"
_TEAMS = "live_teams"  # session.info: the team of each conversation already looked up
CONVERSATION_FIELDS = ("assigned_agent", "owner_agent", "closed_at")
DECISION_FIELDS = ("responder", "needs_reply", "agent")


def install() -> None:
    """Watch every session of this process (once, however often it is called)."""
    if not event.contains(Session, "after_flush", _after_flush):
        event.listen(Session, "after_flush", _after_flush)


def status_changed(session: Session, rows: Iterable[Any]) -> None:
    """Messages whose delivery status moved: rows of (id, conversation_id, status)."""
    if not live.enabled():
        return
    for message_id, conversation_id, status in rows:
        _send(
            session,
            live.STATUS,
            conversation_id,
            conversation_id=conversation_id,
            message_id=message_id,
            status=status,
        )


def _after_flush(session: Session, _context: Any) -> None:
    # In after_flush the new/dirty sets and each attribute's history still show what was written.
    if not live.enabled():
        return
    labelled: set[int] = set()  # contacts whose labels changed: their conversations, one query
    for row in session.new:
        if isinstance(row, Message):
            _send(
                session,
                live.MESSAGE,
                row.conversation_id,
                conversation_id=row.conversation_id,
                contact_id=row.contact_id,
                message_id=row.id,
                direction=row.direction,
            )
        elif isinstance(row, RoutingDecision) and row.responder == HUMAN and row.needs_reply:
            _send(session, live.QUEUE, row.conversation_id, conversation_id=row.conversation_id)
        elif isinstance(row, Conversation) and any(getattr(row, name) for name in CONVERSATION_FIELDS):
            _conversation(session, row)
        elif isinstance(row, ContactLabel) and row.active:
            labelled.add(row.contact_id)
    for row in session.dirty:
        if isinstance(row, Conversation):
            if _changed(row, CONVERSATION_FIELDS):
                _conversation(session, row)
            if _answered(row) and _has_human_decision(session, row.id):
                _send(session, live.QUEUE, row.id, conversation_id=row.id)
        elif isinstance(row, RoutingDecision) and _changed(row, DECISION_FIELDS):
            _send(session, live.QUEUE, row.conversation_id, conversation_id=row.conversation_id)
        elif isinstance(row, ContactLabel) and _changed(row, ("active",)):
            labelled.add(row.contact_id)
    if labelled:
        _labels(session, labelled)


def _labels(session: Session, contact_ids: set[int]) -> None:
    # One event per conversation: each is tagged with its own team, so an agent hears only of
    # the conversations they may see. Several labels changed in one transaction send it once.
    for conversation_id, contact_id in session.execute(
        select(Conversation.id, Conversation.contact_id)
        .where(Conversation.contact_id.in_(sorted(contact_ids)))
        .order_by(Conversation.id)
    ):
        _send(session, live.LABEL, conversation_id, conversation_id=conversation_id, contact_id=contact_id)


def _conversation(session: Session, row: Conversation) -> None:
    _send(
        session,
        live.CONVERSATION,
        row.id,
        conversation_id=row.id,
        contact_id=row.contact_id,
        assigned_agent=row.assigned_agent,
        owner_agent=row.owner_agent,
        closed=row.closed_at is not None,
    )


def _send(session: Session, kind: str, of_conversation: int, **data: Any) -> None:
    item = live.LiveEvent.of(kind, _team(session, of_conversation), **data)
    publish_after_commit(session, AFTER_COMMIT_KEY, item, live.publish)


def _team(session: Session, conversation_id: int) -> str:
    known: dict[int, str] = session.info.setdefault(_TEAMS, {})
    if conversation_id not in known:
        known[conversation_id] = teams.conversation_team(session, conversation_id)
    return known[conversation_id]


def _changed(row: Any, names: tuple[str, ...]) -> bool:
    state = inspect(row)
    return any(state.attrs[name].history.has_changes() for name in names)


def _answered(row: Conversation) -> bool:
    """Our reply cleared the wait: the conversation leaves the human queue."""
    history = inspect(row).attrs.awaiting_reply_since.history
    return history.has_changes() and row.awaiting_reply_since is None and any(history.deleted)


def _has_human_decision(session: Session, conversation_id: int) -> bool:
    return (
        session.scalar(
            select(RoutingDecision.id)
            .where(
                RoutingDecision.conversation_id == conversation_id,
                RoutingDecision.responder == HUMAN,
                RoutingDecision.needs_reply,
            )
            .limit(1)
        )
        is not None
    )
