"""Writing accepted events to the inbox, then putting them on the queue.

The order is the guarantee: commit first, publish after. A replay inserts nothing (the row is
unique on the source's event id) and so publishes nothing. A publish that fails leaves a pending
row that the sweeper will enqueue, so the producer still answers 2xx: the event is safe.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from models import InboxEvent
from models.base import utcnow
from models.db import session_scope
from observability.metrics import EVENTS_ACCEPTED, EVENTS_DUPLICATE
from workers.publish import enqueue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NewEvent:
    source: str
    kind: str
    dedupe_key: str
    payload: dict[str, Any]
    occurred_at: datetime | None


@dataclass(frozen=True)
class Stored:
    accepted: int
    duplicates: int
    enqueued: bool


def store_and_enqueue(events: list[NewEvent]) -> Stored:
    """Insert every event in one transaction, skipping replays; publish the new ones."""
    if not events:
        return Stored(0, 0, True)
    now = utcnow()
    rows = [
        {
            "source": e.source,
            "kind": e.kind,
            "dedupe_key": e.dedupe_key,
            "payload": e.payload,
            "occurred_at": e.occurred_at,
            "received_at": now,
            "enqueued_at": now,
            "state": "pending",
            "attempts": 0,
        }
        for e in events
    ]
    with session_scope() as session:
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        statement = (
            insert(InboxEvent)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["source", "dedupe_key"])
            .returning(InboxEvent.id, InboxEvent.kind)
        )
        new = session.execute(statement).all()

    source = events[0].source
    for _, kind in new:
        EVENTS_ACCEPTED.labels(source, kind).inc()
    duplicates = len(events) - len(new)
    if duplicates:
        EVENTS_DUPLICATE.labels(source).inc(duplicates)
    try:
        enqueue([event_id for event_id, _ in new])
    except Exception:
        log.warning("broker unavailable; the sweeper will enqueue these events", exc_info=True)
        return Stored(len(new), duplicates, False)
    return Stored(len(new), duplicates, True)
