"""The outbound queue: one task per outbox row, each sent at most once.

``send_outbound`` reserves a slot under the shared rate limit, claims the row (``queued`` ->
``sending``, committed), waits for its slot and only then calls the gateway, outside any
transaction.
Because the claim is committed before the call, a redelivered or duplicated task finds the row
no longer queued and sends nothing. What the gateway answers decides the end state:

- accepted: ``sent``, with the gateway's message id, and the message joins the conversation;
- transient failure (nothing was delivered): back to ``queued`` with exponential backoff and
  jitter (a short countdown task; the sweeper covers a lost one), ``failed`` after
  OUTBOUND_MAX_ATTEMPTS;
- closed window without a template, or the gateway's re-engagement error: ``blocked_window``;
- permanent failure: ``failed`` with the gateway's error kept;
- no answer after the request went out (read timeout): ``failed`` as unconfirmed, never resent,
  because the gateway may have accepted it. If it had, its status webhook carries our outbox id
  (``biz_opaque_callback_data``) and ``confirm_from_receipt`` corrects the row to ``sent``.

We choose at most once over at least once: a customer never receives an automated message twice,
and the rare message lost to an unanswered request stays visible as ``failed``.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

import redis
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from domain import service_window
from domain.replies import HUMAN_REPLY
from integrations.whatsapp import (
    BlockedWindow,
    Gateway,
    GatewayError,
    OutgoingMessage,
    PermanentError,
    Sent,
    TemplateCall,
    TransientError,
    Unconfirmed,
    gateway_for,
)
from integrations.whatsapp.rate_limit import limiter
from models import OutboundMessage
from models.base import utcnow
from models.contacts import current_contact
from models.db import session_scope
from models.outbox import BLOCKED_WINDOW, CANCELLED, FAILED, QUEUED, SENDING, SENT
from observability.metrics import OUTBOUND_SENDS
from pipeline import sent_messages
from queueing import names
from queueing.tasks import event_task
from settings import settings

log = logging.getLogger(__name__)

_RECORD_ATTEMPTS = 6
# Less than the limiter's margin (3% of a second), so sends within it of their slots stay under
# the ceiling in every one-second window.
SLOT_TOLERANCE_SECONDS = 0.02
_MAX_RESERVATIONS = 5


@dataclass(frozen=True)
class Claim:
    message: OutgoingMessage
    window_open: bool
    attempts: int


@cache
def gateway() -> Gateway:
    return gateway_for(settings)


@event_task(names.SEND_OUTBOUND)
def send_outbound(outbound_id: int) -> str:
    if not _still_queued(outbound_id):
        return "skipped"  # a duplicate task (redelivered, or republished by the sweeper)
    # Reserve the slot first, claim the row, and wait for the slot only then: the wait ends right
    # before the request, so the database work of the claim cannot bunch sends at the gateway.
    try:
        slot_at = _reserve_slot()
    except redis.RedisError:
        # Sending without the shared limit could breach the number's throughput: leave the row
        # queued; the outbox sweeper publishes it again.
        log.warning(
            "rate limiter unavailable; send deferred", exc_info=True, extra={"outbound_id": outbound_id}
        )
        return "deferred"
    claim = _claim(outbound_id)
    if claim is None:
        return "skipped"  # sent already, or not due yet: a duplicate or early task
    try:
        _wait_for(slot_at)
    except redis.RedisError as exc:
        return _retry_later(outbound_id, claim.attempts, TransientError(f"rate limiter unavailable: {exc}"))
    try:
        sent = gateway().send(claim.message, window_open=claim.window_open)
    except TransientError as exc:
        return _retry_later(outbound_id, claim.attempts, exc)
    except BlockedWindow as exc:
        return _finish(outbound_id, BLOCKED_WINDOW, exc)
    except Unconfirmed as exc:
        return _finish(outbound_id, FAILED, exc, unconfirmed=True)
    except PermanentError as exc:
        return _finish(outbound_id, FAILED, exc)
    _record_sent(outbound_id, sent)
    return SENT


def _still_queued(outbound_id: int) -> bool:
    """A cheap unlocked look, so that duplicate tasks do not spend the shared rate on nothing;
    the claim decides for real."""
    with session_scope() as session:
        state = session.scalar(select(OutboundMessage.state).where(OutboundMessage.id == outbound_id))
    return state == QUEUED


def _reserve_slot() -> float:
    """The moment (``time.monotonic``) this process may send, reserved in the shared limiter."""
    return time.monotonic() + limiter().reserve().wait


def _wait_for(slot_at: float) -> None:
    """Sleep until the slot. A slot already missed by more than SLOT_TOLERANCE_SECONDS (a busy
    machine, a slow claim) is given up for a new one: sending late on an old slot would put it in
    the same second as the sends on time after it, above the ceiling."""
    for _ in range(_MAX_RESERVATIONS):
        time.sleep(max(0.0, slot_at - time.monotonic()))
        if time.monotonic() - slot_at <= SLOT_TOLERANCE_SECONDS:
            return
        slot_at = _reserve_slot()
    time.sleep(max(0.0, slot_at - time.monotonic()))


def _claim(outbound_id: int) -> Claim | None:
    """queued -> sending, committed before the gateway is called; None if someone else has it."""
    with session_scope() as session:
        row = session.scalars(
            select(OutboundMessage)
            .where(
                OutboundMessage.id == outbound_id,
                OutboundMessage.state == QUEUED,
                # A second of slack: a countdown task may run a hair before its time.
                OutboundMessage.next_attempt_at <= utcnow() + timedelta(seconds=1),
            )
            .with_for_update(skip_locked=True)
        ).first()
        if row is None:
            return None
        contact = current_contact(session, row.contact_id)
        row.state, row.attempts, row.updated_at = SENDING, row.attempts + 1, utcnow()
        row.gateway = settings.whatsapp_gateway
        if contact is None or not contact.phone_e164:
            row.state, row.error = FAILED, {"message": "the contact has no phone number to send to"}
            return None
        if contact.automation_paused_at is not None and row.trigger != HUMAN_REPLY:
            # Checked here, at the last moment: a pause also stops what was queued before it.
            row.state, row.error = CANCELLED, {"message": "automation is paused for this contact"}
            return None
        template = TemplateCall(**row.template) if row.template else None
        return Claim(
            message=OutgoingMessage(row.id, contact.phone_e164, row.text, template),
            window_open=service_window.is_open(contact.last_inbound_at, utcnow()),
            attempts=row.attempts,
        )


def _retry_later(outbound_id: int, attempts: int, exc: TransientError) -> str:
    if attempts >= settings.outbound_max_attempts:
        return _finish(outbound_id, FAILED, exc)
    backoff = min(
        settings.outbound_retry_max_seconds, settings.outbound_retry_base_seconds * 2 ** (attempts - 1)
    )
    delay = max(exc.retry_after or 0, random.uniform(backoff / 2, backoff))  # "equal jitter"
    with session_scope() as session:
        row = session.get_one(OutboundMessage, outbound_id, with_for_update=True)
        if row.state != SENDING:
            return "skipped"
        row.state, row.error, row.updated_at = QUEUED, exc.error, utcnow()
        row.next_attempt_at = utcnow() + timedelta(seconds=delay)
    OUTBOUND_SENDS.labels("retry").inc()
    send_outbound.apply_async((outbound_id,), countdown=delay)
    return "retry"


def _finish(outbound_id: int, state: str, exc: GatewayError, *, unconfirmed: bool = False) -> str:
    error = dict(exc.error)
    if unconfirmed:
        error["unconfirmed"] = "no answer after the request was sent; not resent to avoid a duplicate"
    with session_scope() as session:
        row = session.get_one(OutboundMessage, outbound_id, with_for_update=True)
        if row.state != SENDING:
            return "skipped"  # confirmed by a status webhook in the meantime
        row.state, row.error, row.updated_at = state, error, utcnow()
    log.warning("outbound message not sent", extra={"outbound_id": outbound_id, "state": state})
    OUTBOUND_SENDS.labels(state).inc()
    return state


def _record_sent(outbound_id: int, sent: Sent) -> None:
    """Store the gateway's id. The customer has the message now, so keep trying through a
    database hiccup; a status webhook can still confirm the row if every attempt fails."""
    for attempt in range(_RECORD_ATTEMPTS):
        try:
            with session_scope() as session:
                row = sent_messages.locked_with_contact(session, outbound_id)
                if row is not None and row.external_id is None:
                    sent_messages.mark_sent(session, row, sent.external_id, sent.type, sent.request, utcnow())
            OUTBOUND_SENDS.labels(SENT).inc()
            return
        except DBAPIError:
            log.exception("could not record a sent message", extra={"outbound_id": outbound_id})
            time.sleep(2**attempt)
    log.error(
        "sent message left unrecorded",
        extra={"outbound_id": outbound_id, "external_id": sent.external_id},
    )
