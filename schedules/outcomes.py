"""Beat's outcome work: conversations whose customer went silent, and Conversions API events
due again (a retry after a backoff, or a send whose task or worker was lost)."""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update

from domain.outcomes import WENT_SILENT
from models import Conversation
from models.base import utcnow
from models.db import session_scope
from pipeline import conversions
from queueing import names
from queueing.publish import send_conversions
from queueing.tasks import periodic_task
from settings import settings

log = logging.getLogger(__name__)

BATCH = 1000


@periodic_task(names.SWEEP_SILENT_CONVERSATIONS)
def sweep_silent_conversations() -> int:
    """Open conversations whose customer wrote last over OUTCOME_SILENCE_HOURS ago went silent,
    as of that moment. The rows are claimed in the database (SKIP LOCKED, the condition checked
    again by the UPDATE), so two beats, or a message arriving meanwhile, never disagree."""
    silence = timedelta(hours=settings.outcome_silence_hours)
    cutoff = utcnow() - silence
    swept = 0
    with session_scope() as session:
        rows = session.execute(
            select(Conversation.id, Conversation.last_inbound_at)
            .where(Conversation.outcome.is_(None), Conversation.last_inbound_at < cutoff)
            .order_by(Conversation.last_inbound_at)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        ).all()
        for conversation_id, last_inbound_at in rows:
            swept += session.execute(
                update(Conversation)
                .where(
                    Conversation.id == conversation_id,
                    Conversation.outcome.is_(None),
                    Conversation.last_inbound_at < cutoff,
                )
                .values(outcome=WENT_SILENT, outcome_at=last_inbound_at + silence)
            ).rowcount
    if swept:
        log.info("conversations went silent", extra={"count": swept})
    return swept


@periodic_task(names.SWEEP_CONVERSIONS)
def sweep_conversions() -> int:
    """Publish the Conversions API events that are due (nothing while the API is off)."""
    if not settings.meta_conversions_enabled:
        return 0
    with session_scope() as session:
        ids = conversions.due(session)
    if ids:
        send_conversions(ids)
    return len(ids)
