"""The ingest queue: one task per inbox event, exactly once in effect.

``process_inbox_event`` claims the inbox row, runs the step for its kind and marks the row
processed, all in one transaction. A redelivered or duplicated task finds the row processed (or
locked by its twin) and does nothing; a crash before commit leaves the row pending for the
next delivery or the sweeper. Transient database errors retry with backoff; any other error is
recorded on the row and retried by the sweeper until ``INBOX_MAX_ATTEMPTS``, then left ``failed``
with its error for a person to see.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError, StatementError
from sqlalchemy.orm import Session

from domain.order_events import EVENT_TYPES as ORDER_EVENT_TYPES
from models import InboxEvent
from models.base import utcnow
from models.db import session_scope
from models.inbox import FAILED, PENDING, PROCESSED
from observability.metrics import EVENT_LATENCY_SECONDS, EVENTS_PROCESSED, TASK_SECONDS
from pipeline import delivery_reports, echoes, labels, message_changes, orders, templates, waha_events
from queueing import names
from queueing.tasks import event_task
from settings import settings

log = logging.getLogger(__name__)

Step = Callable[[Session, dict[str, Any]], object]

# Which step handles which event: follow an event from here into its module.
STEPS: dict[tuple[str, str], Step] = {
    ("whatsapp", "message"): message_changes.record_cloud_message,
    ("whatsapp", "echo"): echoes.record_cloud_echo,
    ("whatsapp", "status"): delivery_reports.record_status,
    ("whatsapp", "template_status"): templates.record_status_update,
    ("whatsapp", "template_category"): templates.record_category_update,
    **{("orders", kind): orders.record_order_event for kind in ORDER_EVENT_TYPES},
    ("waha", "label.upsert"): labels.record_label_upsert,
    ("waha", "label.deleted"): labels.record_label_deleted,
    ("waha", "label.chat.added"): labels.record_chat_added,
    ("waha", "label.chat.deleted"): labels.record_chat_deleted,
    ("waha", "message"): echoes.record_waha_message,
    ("waha", "message.any"): echoes.record_waha_any,
    ("waha", "message.reaction"): echoes.record_waha_reaction,
    ("waha", "message.edited"): echoes.record_waha_edit,
    ("waha", "message.ack"): waha_events.record_ack,
}


@event_task(names.PROCESS_INBOX_EVENT)
def process_inbox_event(event_id: int) -> str:
    started = time.perf_counter()
    try:
        outcome = _process(event_id)
    except OperationalError:
        raise  # the database is away: Celery retries with backoff
    except Exception as exc:
        _record_failure(event_id, exc)
        outcome = "error"
    TASK_SECONDS.labels("process_inbox_event").observe(time.perf_counter() - started)
    return outcome


def _process(event_id: int) -> str:
    with session_scope() as session:
        # SKIP LOCKED: if a duplicate delivery of this event is being processed right now, leave
        # it to that one rather than wait and do the work twice.
        event = session.scalars(
            select(InboxEvent).where(InboxEvent.id == event_id).with_for_update(skip_locked=True)
        ).first()
        if event is None or event.state != PENDING:
            return "skipped"
        step = STEPS.get((event.source, event.kind))
        if step is None:
            raise LookupError(f"no step handles {event.source} events of kind {event.kind!r}")
        step(session, event.payload)
        event.state = PROCESSED
        event.processed_at = utcnow()
        event.attempts += 1
        kind, received_at = event.kind, event.received_at
    # Counted only once the transaction has committed.
    EVENTS_PROCESSED.labels(kind, "processed").inc()
    EVENT_LATENCY_SECONDS.labels(kind).observe((utcnow() - received_at).total_seconds())
    return "processed"


def describe_error(exc: Exception) -> str:
    """The error as a person reads it on the inbox row. A failed statement names the database's
    own complaint (its first line) and never the statement's parameters or the database's DETAIL:
    those hold the customer's data."""
    if isinstance(exc, StatementError) and exc.orig is not None:
        complaint = (str(exc.orig).strip().splitlines() or [""])[0]
        return f"{type(exc.orig).__name__}: {complaint}"[:2000]
    return f"{type(exc).__name__}: {exc}"[:2000]


def _record_failure(event_id: int, exc: Exception) -> None:
    log.exception("inbox event failed", extra={"event_id": event_id})
    try:
        with session_scope() as session:
            event = session.get(InboxEvent, event_id, with_for_update=True)
            if event is None or event.state != PENDING:
                return
            event.attempts += 1
            event.last_error = describe_error(exc)
            if event.attempts >= settings.inbox_max_attempts:
                event.state = FAILED
            kind, state = event.kind, event.state
    except DBAPIError:
        log.exception("could not record the failure", extra={"event_id": event_id})
        return
    EVENTS_PROCESSED.labels(kind, "failed" if state == FAILED else "error").inc()
