"""Writing accepted events to the inbox, then putting them on the queue.

The order is the guarantee: commit first, publish after. A replay inserts nothing (the row is
unique on the source's event id) and so publishes nothing. A publish that fails leaves a pending
row that the sweeper will enqueue, so the producer still answers 2xx: the event is safe.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import Insert
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from models import InboxEvent
from models.base import utcnow
from models.db import dialect_insert, session_scope
from models.inbox import PENDING
from observability.metrics import EVENTS_ACCEPTED, EVENTS_DUPLICATE, UNKNOWN_CHANNEL_EVENTS
from queueing.publish import enqueue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewEvent:
    source: str
    kind: str
    dedupe_key: str
    payload: dict[str, Any]
    occurred_at: datetime | None
    # "unknown_channel": for a number that is no enabled channel; stored, never queued.
    state: str = PENDING


@dataclass(frozen=True)
class Stored:
    accepted: int
    duplicates: int
    unknown_channel: int = 0

    def answer(self) -> dict[str, int]:
        """The webhooks' JSON answer (``unknown_channel`` only when there were such events)."""
        answer = {"accepted": self.accepted, "duplicates": self.duplicates}
        if self.unknown_channel:
            answer["unknown_channel"] = self.unknown_channel
        return answer


@cache
def _insert_new(dialect: str) -> Insert:
    """``INSERT … ON CONFLICT DO NOTHING RETURNING id, kind``: only new rows come back.

    Built once and given the rows at execution, so SQLAlchemy compiles it once, not per request.
    """
    return (
        dialect_insert(dialect)(InboxEvent.__table__)
        .on_conflict_do_nothing(index_elements=["source", "dedupe_key"])
        .returning(InboxEvent.id, InboxEvent.kind, InboxEvent.state)
    )


def row_of(event: NewEvent, now: datetime) -> dict[str, Any]:
    """The inbox row of an event received (and about to be published) at ``now``."""
    return {
        "source": event.source,
        "kind": event.kind,
        "dedupe_key": event.dedupe_key,
        "payload": event.payload,
        "occurred_at": event.occurred_at,
        "received_at": now,
        "enqueued_at": now,
        "state": event.state,
        "attempts": 0,
    }


def store_and_enqueue(events: list[NewEvent]) -> Stored:
    """Insert every event in one transaction, skipping replays; publish the new ones."""
    if not events:
        return Stored(0, 0)
    now = utcnow()
    rows = [row_of(e, now) for e in events]
    with session_scope() as session:
        new = session.execute(_insert_new(session.get_bind().dialect.name), rows).all()

    source = events[0].source
    pending = [(event_id, kind) for event_id, kind, state in new if state == PENDING]
    for _, kind in pending:
        EVENTS_ACCEPTED.labels(source, kind).inc()
    unknown = len(new) - len(pending)
    if unknown:
        UNKNOWN_CHANNEL_EVENTS.labels(source).inc(unknown)
    duplicates = len(events) - len(new)
    if duplicates:
        EVENTS_DUPLICATE.labels(source).inc(duplicates)
    try:
        enqueue([event_id for event_id, _ in pending])
    except Exception:
        log.warning("broker unavailable; the sweeper will enqueue these events", exc_info=True)
    return Stored(len(pending), duplicates, unknown)


class InboxUnavailable(Exception):
    """The inbox could not be written: the producer answers 503 so that the sender retries."""


# The database is away, or every pooled connection is busy (QueuePool's wait ran out): either way
# "not now", answered 503 by every endpoint (producers/app.py), never 500.
DATABASE_UNAVAILABLE = (OperationalError, PoolTimeout)


async def store(events: list[NewEvent]) -> Stored:
    """``store_and_enqueue`` off the event loop; ``InboxUnavailable`` when the database is away."""
    try:
        return await run_in_threadpool(store_and_enqueue, events)
    except (DBAPIError, PoolTimeout) as exc:
        log.exception("inbox unavailable")
        raise InboxUnavailable from exc


async def unavailable_handler(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, InboxUnavailable):  # the API's own database call
        log.error("database unavailable", exc_info=exc, extra={"path": request.url.path})
    return JSONResponse({"error": "the database is unavailable; retry later"}, status_code=503)
