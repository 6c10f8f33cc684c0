"""Sweepers: beat's guarantee that an accepted event, or a queued message, is never lost.

An inbox row still pending well after it was last enqueued lost its task somewhere (the broker
was down when the producer published, a Redis restart dropped the queue, a worker was killed
before it acknowledged). The sweeper claims such rows, bumps their ``enqueued_at`` and publishes
them again; processing is idempotent, so an event that was only slow costs one no-op task.

The outbox gets the same care: a queued message whose send task was lost is published again, and
so is a broadcast whose expansion task was lost (it resumes at its cursor). A message stuck in
``sending`` lost its sender on the way, and its dispatch marker says how far it got (see
workers/outbound.py):

- no ``dispatched_at``: the sender stopped before the request (killed, or cancelled by a broker
  blip while it waited for its rate-limit slot); nothing left, so it goes back to ``queued`` and
  is sent again;
- ``dispatched_at`` set: the request may have reached the gateway, which cannot be known, so it is
  marked failed as unconfirmed and never resent, unless its status webhook confirms it later.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update

from domain.replies import BULK
from models import Broadcast, InboxEvent, Message, OutboundMessage, RoutingDecision
from models.base import utcnow
from models.broadcasts import EXPANDING
from models.conversations import INBOUND
from models.db import session_scope
from models.inbox import PENDING
from models.outbox import FAILED, QUEUED, SENDING
from models.routing import AI_PENDING
from observability.metrics import INBOX_REQUEUED, OUTBOX_REQUEUED
from pipeline import media, outbox
from queueing import names
from queueing.publish import (
    answer_with_ai,
    download_media,
    enqueue,
    expand_broadcast,
    route_messages,
    send_outbound,
)
from queueing.tasks import periodic_task
from settings import settings

log = logging.getLogger(__name__)

BATCH = 1000


@periodic_task(names.SWEEP_INBOX)
def sweep_inbox() -> int:
    """Re-enqueue pending inbox rows not enqueued for INBOX_SWEEP_AFTER_SECONDS. Returns how many."""
    cutoff = utcnow() - timedelta(seconds=settings.inbox_sweep_after_seconds)
    with session_scope() as session:
        # SKIP LOCKED: two beats (or a slow previous sweep) never claim the same rows.
        ids = list(
            session.scalars(
                select(InboxEvent.id)
                .where(InboxEvent.state == PENDING, InboxEvent.enqueued_at < cutoff)
                .order_by(InboxEvent.enqueued_at)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            )
        )
        if ids:
            session.execute(update(InboxEvent).where(InboxEvent.id.in_(ids)).values(enqueued_at=utcnow()))
    if ids:
        enqueue(ids)
        INBOX_REQUEUED.inc(len(ids))
        log.warning("re-enqueued stale inbox events", extra={"count": len(ids)})
    return len(ids)


@periodic_task(names.SWEEP_OUTBOX)
def sweep_outbox() -> int:
    """Re-publish queued outbox rows overdue by OUTBOX_SWEEP_AFTER_SECONDS, and claimed ones
    whose sender stopped before the request; give up on rows whose sender died after it. Returns
    how many rows were re-published."""
    now = utcnow()
    overdue = now - timedelta(seconds=settings.outbox_sweep_after_seconds)
    with session_scope() as session:
        rows = session.scalars(
            select(OutboundMessage)
            .where(OutboundMessage.state.in_((QUEUED, SENDING)), OutboundMessage.next_attempt_at < overdue)
            .order_by(OutboundMessage.next_attempt_at)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        requeue: list[OutboundMessage] = []
        # A live sender holds a claim without a marker for at most its slot wait, and a
        # dispatched one for at most the request's timeout: older ones lost their sender.
        undispatched_before = overdue - timedelta(seconds=settings.outbound_max_slot_wait_seconds)
        abandoned_before = overdue - timedelta(seconds=settings.outbound_timeout_seconds)
        for row in rows:
            if row.state == QUEUED:
                row.next_attempt_at = now
                requeue.append(row)
            elif row.dispatched_at is None:
                if row.updated_at < undispatched_before:
                    row.state, row.next_attempt_at, row.updated_at = QUEUED, now, now
                    requeue.append(row)
            elif row.updated_at < abandoned_before:
                row.state, row.updated_at = FAILED, now
                row.error = {"message": "the worker stopped while sending", "unconfirmed": "not resent"}
                outbox.release_next(session, row)
        bulk = [row.id for row in requeue if row.trigger in BULK]
        transactional = [row.id for row in requeue if row.trigger not in BULK]
    if requeue:
        send_outbound(transactional)
        send_outbound(bulk, bulk=True)
        OUTBOX_REQUEUED.inc(len(requeue))
        log.warning("re-published stale outbox rows", extra={"count": len(requeue)})
    return len(requeue)


@periodic_task(names.SWEEP_BROADCASTS)
def sweep_broadcasts() -> int:
    """Publish again the expansion of broadcasts still expanding OUTBOX_SWEEP_AFTER_SECONDS after
    they were last published; a running expansion skips the batches it is not holding."""
    now = utcnow()
    with session_scope() as session:
        stale = session.scalars(
            select(Broadcast)
            .where(
                Broadcast.state == EXPANDING,
                Broadcast.published_at < now - timedelta(seconds=settings.outbox_sweep_after_seconds),
            )
            .with_for_update(skip_locked=True)
        ).all()
        for broadcast in stale:
            broadcast.published_at = now
        ids = [broadcast.id for broadcast in stale]
    for broadcast_id in ids:
        expand_broadcast(broadcast_id)
    return len(ids)


@periodic_task(names.SWEEP_ROUTING)
def sweep_routing() -> int:
    """Re-publish routing for recent inbound messages that have no decision yet, and the AI
    agent's task for decisions still waiting on it. Returns how many tasks were published.

    A message still waiting in a long routing queue may be published twice; its second task
    finds the decision made and does nothing (the decision is unique per message)."""
    now = utcnow()
    overdue = now - timedelta(seconds=settings.inbox_sweep_after_seconds)
    # Older messages are not answered automatically any more; routing still records a decision.
    horizon = now - timedelta(days=2)
    ai_overdue = overdue - timedelta(seconds=settings.ai_timeout_seconds)
    with session_scope() as session:
        messages = list(
            session.scalars(
                select(Message.id)
                .outerjoin(RoutingDecision, RoutingDecision.message_id == Message.id)
                .where(
                    Message.direction == INBOUND,
                    Message.created_at < overdue,
                    Message.created_at > horizon,
                    RoutingDecision.id.is_(None),
                )
                .order_by(Message.created_at)
                .limit(BATCH)
            )
        )
        # SKIP LOCKED and a new published_at: two beats, or two ticks, publish each at most once
        # per grace period.
        waiting_for_ai = list(
            session.scalars(
                select(RoutingDecision.id)
                .where(RoutingDecision.state == AI_PENDING, RoutingDecision.published_at < ai_overdue)
                .limit(BATCH)
                .with_for_update(skip_locked=True)
            )
        )
        if waiting_for_ai:
            session.execute(
                update(RoutingDecision).where(RoutingDecision.id.in_(waiting_for_ai)).values(published_at=now)
            )
    if messages:
        route_messages(messages)
    if waiting_for_ai:
        answer_with_ai(waiting_for_ai)
    if messages or waiting_for_ai:
        log.warning(
            "re-published routing", extra={"messages": len(messages), "ai_decisions": len(waiting_for_ai)}
        )
    return len(messages) + len(waiting_for_ai)


@periodic_task(names.SWEEP_MEDIA)
def sweep_media() -> int:
    """Publish again the downloads of media files still pending that nobody holds. Returns how many."""
    with session_scope() as session:
        ids = media.waiting(session, settings.inbox_sweep_after_seconds, BATCH)
    if ids:
        download_media(ids)
        log.info("republished media downloads", extra={"count": len(ids)})
    return len(ids)
