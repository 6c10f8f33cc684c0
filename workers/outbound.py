"""The outbound queue: one task per outbox row, each sent at most once.

``send_outbound`` goes through five steps, and only the last one talks to the gateway, outside
any transaction:

1. **Claim** (``queued`` -> ``sending``, committed): a redelivered or duplicated task finds the
   row no longer queued and sends nothing (nor spends a slot). The claim is the last look before
   sending: a contact paused since the message was queued gets nothing automated, one who opted
   out since gets no marketing (domain.replies.MARKETING), and an order message waits while an
   older one of the same customer is still on its way (pipeline/outbox.py, "One after the
   other").
2. **Slot**: reserved in the shared rate limit, far enough ahead for the dispatch marker's
   commit, and only if it is at most OUTBOUND_MAX_SLOT_WAIT_SECONDS away. A slot further off gives
   the row back to ``queued`` and publishes its task again for about then: no worker sleeps for
   minutes holding a message.
3. **Wait** for the slot. A claimed row without a dispatch marker cannot have left: if the task
   dies here (its worker killed, or the task cancelled because the broker connection dropped,
   ``worker_cancel_long_running_tasks_on_connection_loss``), the outbox sweeper gives the row back
   to the queue and it is sent later, once.
4. **Dispatch**: ``dispatched_at`` committed right before the request, timed to end as the slot
   comes (it starts twice the marker's recent commit time ahead of it). From here on the row is
   "maybe sent", and never sent again without proof that it was not.
5. **Send**. What the gateway answers decides the end state:

- accepted: ``sent``, with the gateway's message id, and the message joins the conversation;
- transient failure (nothing was delivered): back to ``queued`` with exponential backoff and
  jitter (a short countdown task; the sweeper covers a lost one), ``failed`` after
  OUTBOUND_MAX_ATTEMPTS. A status webhook that proves the send arrived after all settles the row
  as ``sent`` meanwhile, and the retry then finds nothing to do;
- the gateway's re-engagement error (the window had closed sooner than we knew) for a message
  that has a template: ``queued`` again at once, to go as the template, once;
- closed window without a template (or that error for a message without one): ``blocked_window``;
- permanent failure: ``failed`` with the gateway's error kept;
- no answer after the request went out (read timeout, a proxy's 502 or 504): ``failed`` as
  unconfirmed, never resent, because the gateway may have accepted it. If it had, its status
  webhook carries our outbox id (``biz_opaque_callback_data``) and ``confirm_from_receipt``
  corrects the row to ``sent``.

Never outside the ceiling: the request goes only if it leaves within SLOT_TOLERANCE_SECONDS of
its slot, measured from before the slot was asked for (the reservation's round trip counts) to
after the dispatch marker is committed. A send that missed its slot takes a new one (before the
marker: as many as it needs; after it: one within _LATE_SLOT_WAIT_SECONDS, the marker kept), or
gives its row back; it never goes late on the old one.

Each row goes out through its channel (``channel_id``; None is the settings channel,
WHATSAPP_GATEWAY): that channel's gateway client (one per channel, kept while the channel is
unchanged) and that channel's rate limit. A row whose channel is disabled fails at the claim.

We choose at most once over at least once: a customer never receives an automated message twice,
and the rare message lost to an unanswered request stays visible as ``failed``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache
from typing import Any

import redis
from sqlalchemy import ColumnElement, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from domain import backoff, service_window
from domain.replies import BULK, HUMAN_REPLY, MARKETING
from integrations.storage import ChunkReader, media_store
from integrations.whatsapp import (
    Attachment,
    BlockedWindow,
    CloudApiGateway,
    Gateway,
    GatewayError,
    MediaRefused,
    OutgoingMessage,
    PermanentError,
    Sent,
    TemplateCall,
    TransientError,
    Unconfirmed,
    gateway_for,
)
from integrations.whatsapp.rate_limit import limiter
from models import Channel, Contact, MediaFile, OutboundMessage
from models.base import utcnow
from models.contacts import current_contact
from models.db import session_scope
from models.outbox import BLOCKED_TEMPLATE, BLOCKED_WINDOW, CANCELLED, FAILED, QUEUED, SENDING, SENT
from models.secret_box import SecretKeyMissing, SecretUnreadable
from observability.metrics import OUTBOUND_SENDS
from pipeline import channels, media_links, outbox, rich_messages, sent_messages, templates
from queueing import names, publish
from queueing.tasks import event_task
from settings import settings

log = logging.getLogger(__name__)

_RECORD_ATTEMPTS = 6
# The limiter spaces slots (1 + OUTBOUND_RATE_GUARD_SECONDS) / rate apart, so sends that reach
# the gateway up to the guard (30 ms by default) after their slots stay within the ceiling in every
# one-second window. Lateness is measured up to the moment before the request; the rest of the
# guard is for the request to be written out and read.
SLOT_TOLERANCE_SECONDS = 0.01
_MAX_RESERVATIONS = 5
# The longest a send that missed its slot after committing its marker waits for a new one.
_LATE_SLOT_WAIT_SECONDS = 1.0
# Marks a row whose text the gateway refused as outside the 24-hour window: it goes as template.
_AS_TEMPLATE = "retry_as_template"
# A send whose file another worker is uploading to the Cloud API comes back this much later.
_UPLOAD_WAIT_SECONDS = 0.5
# Marks a row whose media id Meta refused (expired): its file was uploaded again, and a second
# refusal fails it. And how many times its file's upload failed so far (bounded).
_REUPLOADED = "media_uploaded_again"
_UPLOAD_FAILURES = "media_upload_failures"
# The marks a row's error keeps through retries.
_MARKS = (_AS_TEMPLATE, _REUPLOADED)


class _DispatchLead:
    """How long before its slot a send commits its dispatch marker: twice what the commit has
    taken lately (bounded), so that it ends before the slot rather than making the send late."""

    seconds = 0.02

    @classmethod
    def observe(cls, took: float) -> None:
        cls.seconds = min(0.25, max(0.005, 0.8 * cls.seconds + 0.2 * 2 * took))


@dataclass(frozen=True)
class LocalSlot:
    """A slot of the shared limiter on this process's ``time.monotonic`` clock."""

    granted: bool
    wait: float  # seconds from the reservation to the slot (if refused: to the next free one)
    due: float  # the earliest moment the slot can be: counted from before it was asked for
    go: float  # when to go: never before the slot, whatever the reservation's round trip

    def late_by(self) -> float:
        return time.monotonic() - self.due


@dataclass(frozen=True)
class MediaRef:
    """Our file that a claimed rich message sends by id."""

    id: int
    key: str
    mime_type: str
    filename: str | None
    size: int


@dataclass(frozen=True)
class Claim:
    message: OutgoingMessage
    window_open: bool
    claimed_at: datetime  # the row's updated_at as the claim left it: whose claim it still is
    bulk: bool
    channel_id: int | None = None  # None: the settings channel
    gateway: Gateway | None = None  # the channel's client (None: the settings channel's)
    contact_id: int | None = None  # the row's (as queued: merges do not change it)
    media: MediaRef | None = None
    cloud_media_id: str | None = None  # the id Meta gave our file, which this send carries


@cache
def gateway() -> Gateway:
    """The settings channel's gateway (WHATSAPP_GATEWAY)."""
    return gateway_for(settings)


# Each stored channel's gateway client, kept while the channel is unchanged (its updated_at), so
# its HTTP session is pooled and its secrets decrypted once.
_channel_gateways: dict[int, tuple[datetime, Gateway]] = {}


def _channel_gateway(channel: Channel) -> Gateway:
    kept = _channel_gateways.get(channel.id)
    if kept is not None and kept[0] == channel.updated_at:
        return kept[1]
    client = channels.gateway_of(channel)
    _channel_gateways[channel.id] = (channel.updated_at, client)
    return client


@event_task(names.SEND_OUTBOUND)
def send_outbound(outbound_id: int) -> str:
    claim = _claim(outbound_id)
    if isinstance(claim, str):
        return claim  # not ours (a duplicate or early task), waiting its turn, or ended at the claim
    if claim.media is not None:
        claim = _with_media(outbound_id, claim)
        if isinstance(claim, str):
            return claim
    try:
        slot = _wait_for(_reserve_slot(claim.channel_id), claim.channel_id)
    except redis.RedisError:
        # Sending without the shared limit could breach the number's throughput: the row goes
        # back to the queue, to be tried again (the sweeper publishes it if this cannot).
        log.warning(
            "rate limiter unavailable; send deferred", exc_info=True, extra={"outbound_id": outbound_id}
        )
        return _give_back(outbound_id, claim, settings.outbound_retry_base_seconds, "deferred")
    if not slot.granted:
        return _give_back(outbound_id, claim, _countdown_to(slot), "later")
    dispatched_at = _dispatch(outbound_id, claim)
    if dispatched_at is None:
        return "skipped"  # no longer our claim: the sweeper gave the row back meanwhile
    slot = _on_time(slot, claim.channel_id)
    if slot is None:
        # Too late for every slot within the cap: nothing left, so it may go again at once.
        return _give_back(outbound_id, claim, 0.0, "late", dispatched_at=dispatched_at)
    try:
        sent = (claim.gateway or gateway()).send(claim.message, window_open=claim.window_open)
    except TransientError as exc:
        return _retry_later(outbound_id, exc, claim.bulk)
    except BlockedWindow as exc:
        if claim.window_open and claim.message.template is not None:
            return _retry_as_template(outbound_id, exc, claim.bulk)
        return _finish(outbound_id, BLOCKED_WINDOW, exc)
    except Unconfirmed as exc:
        return _finish(outbound_id, FAILED, exc, unconfirmed=True)
    except MediaRefused as exc:
        if claim.media is not None and claim.cloud_media_id is not None:
            return _retry_with_new_upload(outbound_id, exc, claim)
        return _finish(outbound_id, FAILED, exc)
    except PermanentError as exc:
        return _finish(outbound_id, FAILED, exc)
    if sent.warning is not None:
        log.warning(
            "message sent other than it should have been: %s",
            sent.warning["message"],
            extra={"outbound_id": outbound_id, "reason": sent.warning["message"]},
        )
    _record_sent(outbound_id, sent, claim.contact_id)
    return SENT


def _reserve_slot(
    channel_id: int | None, lead: float | None = None, max_wait: float | None = None
) -> LocalSlot:
    """The next slot of the channel's shared limiter, if it is within ``max_wait`` (default:
    OUTBOUND_MAX_SLOT_WAIT_SECONDS), and ``lead`` seconds ahead (default: far enough for the
    dispatch marker to be committed before it)."""
    asked = time.monotonic()
    slot = limiter(channel_id).reserve(
        max_wait=settings.outbound_max_slot_wait_seconds if max_wait is None else max_wait,
        not_before=_DispatchLead.seconds if lead is None else lead,
    )
    answered = time.monotonic()
    return LocalSlot(slot.granted, slot.wait, due=asked + slot.wait, go=answered + slot.wait)


def _wait_for(slot: LocalSlot, channel_id: int | None) -> LocalSlot:
    """Sleep until the dispatch marker's lead before the slot. A slot missed by more than
    SLOT_TOLERANCE_SECONDS already (a busy machine) is given up for a new one; returns a refused
    slot if none comes within the cap."""
    for _ in range(_MAX_RESERVATIONS):
        if not slot.granted:
            return slot
        time.sleep(max(0.0, slot.go - _DispatchLead.seconds - time.monotonic()))
        if slot.late_by() <= SLOT_TOLERANCE_SECONDS:
            return slot
        slot = _reserve_slot(channel_id)
    return LocalSlot(False, 0.0, time.monotonic(), time.monotonic())  # this machine is too slow now


def _on_time(slot: LocalSlot, channel_id: int | None) -> LocalSlot | None:
    """Sleep until the slot and make sure the request leaves within SLOT_TOLERANCE_SECONDS of it.
    Committing the marker may have made it miss the slot: then it takes the next free one (the
    marker stays, as nothing has left yet), rather than giving the row back; None if no slot
    comes within _LATE_SLOT_WAIT_SECONDS (a marked row waits only briefly: a sender killed now
    leaves it "maybe sent"), or the limiter is unreachable: the row has not left."""
    for _ in range(_MAX_RESERVATIONS):
        time.sleep(max(0.0, slot.go - time.monotonic()))
        if slot.late_by() <= SLOT_TOLERANCE_SECONDS:
            return slot
        try:
            slot = _reserve_slot(channel_id, lead=0.0, max_wait=_LATE_SLOT_WAIT_SECONDS)
        except redis.RedisError:
            log.warning("rate limiter unavailable after the marker; send deferred", exc_info=True)
            return None
        if not slot.granted:
            return None
    return None


def _countdown_to(slot: LocalSlot) -> float:
    """When to try again after a refused slot: about when it will be within the cap, half of it."""
    return max(0.05, slot.wait - settings.outbound_max_slot_wait_seconds / 2)


def _claim(outbound_id: int) -> Claim | str:
    """queued -> sending, committed before a slot is taken; or why not: "skipped" (someone else
    has it, or it is not due), "waiting" (behind an older order message), or the end state the
    claim gave it (cancelled, failed)."""
    with session_scope() as session:
        # The row and its contact in one statement (only the row locked); a merged contact is
        # followed to its survivor after.
        found = session.execute(
            select(OutboundMessage, Contact)
            .join(Contact, Contact.id == OutboundMessage.contact_id)
            .where(
                OutboundMessage.id == outbound_id,
                OutboundMessage.state == QUEUED,
                # A second of slack: a countdown task may run a hair before its time.
                OutboundMessage.next_attempt_at <= utcnow() + timedelta(seconds=1),
            )
            .with_for_update(skip_locked=True, of=OutboundMessage)
        ).first()
        if found is None:
            return "skipped"
        row, contact = found
        if outbox.waits_behind(session, row):
            return "waiting"  # published again when the older one ends (or by the sweeper)
        if contact.merged_into_id is not None:
            contact = current_contact(session, row.contact_id)
        now = utcnow()
        row.updated_at, row.gateway = now, settings.whatsapp_gateway
        channel = session.get(Channel, row.channel_id) if row.channel_id is not None else None
        client, refused = _client_of(channel)
        if channel is not None:
            row.gateway = channel.kind
        # Checked here, at the last moment: a pause or an opt-out also stops what was queued before.
        if refused is not None:
            ended, row.error = FAILED, {"message": refused}
        elif contact is None or not contact.phone_e164:
            ended, row.error = FAILED, {"message": "the contact has no phone number to send to"}
        elif contact.automation_paused_at is not None and row.trigger != HUMAN_REPLY:
            ended, row.error = CANCELLED, {"message": "automation is paused for this contact"}
        elif contact.opted_out_at is not None and row.trigger in MARKETING:
            ended = CANCELLED
            row.error = {"message": "the contact opted out of marketing messages", "opted_out": True}
        else:
            template = TemplateCall(**row.template) if row.template else None
            window_open = service_window.is_open(contact.last_inbound_at, now)
            window_open = window_open and not (row.error or {}).get(_AS_TEMPLATE)
            usable, why = (
                templates.usable(session, template.name, template.language) if template else (True, None)
            )
            rich_template = _rich_template(row.body)
            if rich_template is not None:
                # A template written by the sender goes as that template, window or not.
                usable, why = templates.usable(session, *rich_template)
                window_open = False
            if window_open or usable:
                row.state, row.dispatched_at = SENDING, None
                message = OutgoingMessage(row.id, contact.phone_e164, row.text, template, body=row.body)
                return Claim(
                    message=message,
                    window_open=window_open,
                    claimed_at=now,
                    bulk=row.trigger in BULK,
                    channel_id=row.channel_id,
                    gateway=client,
                    contact_id=row.contact_id,
                    media=_media_ref(session, row.media_file_id),
                )
            # It would go as the template, which Meta would refuse: visibly blocked, not failed.
            ended, row.error = BLOCKED_TEMPLATE, {"message": why, "blocked_template": True}
            log.warning("template unusable; message blocked", extra={"outbound_id": row.id, "reason": why})
        row.state = ended
        outbox.release_next(session, row)
    OUTBOUND_SENDS.labels(ended).inc()
    return ended


def _rich_template(body: dict[str, Any] | None) -> tuple[str, str] | None:
    """(name, language) of a rich message that is a template."""
    if not body or body.get("type") != "template":
        return None
    return body["template"]["name"], body["template"]["language"]["code"]


def _media_ref(session: Session, media_file_id: int | None) -> MediaRef | None:
    media = session.get(MediaFile, media_file_id) if media_file_id is not None else None
    if media is None:
        return None
    mime_type = media.mime_type or "application/octet-stream"
    return MediaRef(media.id, media.key, mime_type, media.filename, media.size or 0)


def _with_media(outbound_id: int, claim: Claim) -> Claim | str:
    """The claim ready to send our file: on the Cloud API by the media id Meta gave it when it
    was uploaded through this channel (uploaded now, once, if it never was), streamed from the
    store; to WAHA as a signed link it fetches (as its bytes when no link can be made).
    Nothing has gone to the customer yet, so a failed upload gives the row back to try later."""
    assert claim.media is not None
    media, client = claim.media, claim.gateway or gateway()
    store = media_store(settings.media_store, settings.media_s3_endpoint_url)
    attachment = Attachment(
        media.mime_type,
        media.filename,
        media.size,
        lambda: ChunkReader(store.chunks(media.key), media.size),
        url=media_links.url_of(media.key) if client.name == "waha" else None,
    )
    if isinstance(client, CloudApiGateway) and claim.message.body is not None:
        with session_scope() as session:
            upload = rich_messages.claim_upload(session, media.id, claim.channel_id)
        cloud_id = upload.cloud_id
        if cloud_id is None and not upload.ours:
            # Another send of the same file is uploading it: come back for its id.
            return _give_back(outbound_id, claim, _UPLOAD_WAIT_SECONDS, "waiting for the upload")
        if cloud_id is None:
            try:
                cloud_id = client.upload_media(attachment)
            except (GatewayError, OSError) as exc:
                with session_scope() as session:
                    rich_messages.uploaded(session, media.id, claim.channel_id, None)
                return _upload_failed(outbound_id, claim, exc)
            with session_scope() as session:
                rich_messages.uploaded(session, media.id, claim.channel_id, cloud_id)
        body = rich_messages.with_media_id(claim.message.body, cloud_id)
        return replace(claim, message=replace(claim.message, body=body), cloud_media_id=cloud_id)
    if client.name == "waha":
        return replace(claim, message=replace(claim.message, attachment=attachment))
    return claim  # the sandbox sends nothing


def _undispatched_claim(outbound_id: int, claim: Claim) -> tuple[ColumnElement[bool], ...]:
    """The row is still in our claim and no request of it has left yet."""
    return (
        OutboundMessage.id == outbound_id,
        OutboundMessage.state == SENDING,
        OutboundMessage.dispatched_at.is_(None),
        OutboundMessage.updated_at == claim.claimed_at,
    )


def _upload_failed(outbound_id: int, claim: Claim, exc: GatewayError | OSError) -> str:
    """The file's upload failed, before anything went to the customer. A transient failure gives
    the row back with backoff (as a failed send would), at most OUTBOUND_MAX_ATTEMPTS times in
    all; a permanent one, or the last, fails the row with a reason a person can read."""
    said = dict(exc.error) if isinstance(exc, GatewayError) else {"message": str(exc)}
    with session_scope() as session:
        row = session.scalars(
            select(OutboundMessage).where(*_undispatched_claim(outbound_id, claim)).with_for_update()
        ).first()
        if row is None:
            return "skipped"  # no longer our claim
        failures = int((row.error or {}).get(_UPLOAD_FAILURES, 0)) + 1
        if not isinstance(exc, TransientError | OSError) or failures >= settings.outbound_max_attempts:
            tries = f"{failures} attempt" + ("s" if failures > 1 else "")
            reason = f"the file could not be uploaded to the Cloud API ({tries}): {exc}"
            return _end(session, row, FAILED, {**said, "message": reason, _UPLOAD_FAILURES: failures})
        hint = exc.retry_after if isinstance(exc, TransientError) else None
        delay = _retry_delay(failures, hint)
        row.state, row.updated_at = QUEUED, utcnow()
        row.error = {**said, **_marks_of(row.error), _UPLOAD_FAILURES: failures}
        row.next_attempt_at = utcnow() + timedelta(seconds=delay)
    log.warning("media upload failed; send deferred: %s", exc, extra={"outbound_id": outbound_id})
    OUTBOUND_SENDS.labels("retry").inc()
    _publish_again(outbound_id, claim.bulk, delay)
    return "retry"


def _marks_of(error: dict[str, Any] | None) -> dict[str, Any]:
    """The retry marks a row's error carries (as template, file uploaded again)."""
    return {mark: True for mark in _MARKS if (error or {}).get(mark)}


def _retry_with_new_upload(outbound_id: int, exc: MediaRefused, claim: Claim) -> str:
    """Meta refused the media id we sent (it expired, say); nothing reached the customer. Meta's
    id is forgotten, so the row goes again at once with the file uploaded anew: once. A second
    refusal fails the row, saying so."""
    assert claim.media is not None and claim.cloud_media_id is not None
    with session_scope() as session:
        row = session.get_one(OutboundMessage, outbound_id, with_for_update=True)
        if row.state != SENDING:
            return "skipped"
        rich_messages.forget(session, claim.media.id, claim.channel_id, claim.cloud_media_id)
        if (row.error or {}).get(_REUPLOADED):
            reason = f"Meta refused the file again after it was uploaded anew: {exc}"
            return _end(session, row, FAILED, {**exc.error, "message": reason})
        row.state, row.dispatched_at, row.updated_at = QUEUED, None, utcnow()
        row.error = {**exc.error, **_marks_of(row.error), _REUPLOADED: True}
        row.next_attempt_at = utcnow()
    log.warning("media id refused by Meta; uploading the file again", extra={"outbound_id": outbound_id})
    OUTBOUND_SENDS.labels("retry").inc()
    _publish_again(outbound_id, claim.bulk, None)
    return "retry"


def _client_of(channel: Channel | None) -> tuple[Gateway | None, str | None]:
    """The gateway client of a stored channel, or why the row cannot go through it."""
    if channel is None:
        return None, None
    if not channel.enabled:
        return None, f"channel {channel.name!r} is disabled"
    try:
        return _channel_gateway(channel), None
    except (SecretKeyMissing, SecretUnreadable, ValueError) as exc:
        log.error("channel cannot send", extra={"channel": channel.name, "error": str(exc)})
        return None, f"channel {channel.name!r} cannot send: {exc}"


def _dispatch(outbound_id: int, claim: Claim) -> datetime | None:
    """Mark the claimed row dispatched (an attempt that may reach the gateway), committed; None if
    the claim is no longer ours."""
    started, now = time.monotonic(), utcnow()
    with session_scope() as session:
        marked = session.execute(
            update(OutboundMessage)
            .where(*_undispatched_claim(outbound_id, claim))
            .values(dispatched_at=now, updated_at=now, attempts=OutboundMessage.attempts + 1)
        ).rowcount
    _DispatchLead.observe(time.monotonic() - started)
    return now if marked else None


def _give_back(
    outbound_id: int, claim: Claim, delay: float, outcome: str, *, dispatched_at: datetime | None = None
) -> str:
    """Our claim, from which no request left, goes back to ``queued`` for ``delay`` seconds (an
    attempt counted by the dispatch marker is taken back)."""
    values: dict[str, Any] = {
        "state": QUEUED,
        "dispatched_at": None,
        "next_attempt_at": utcnow() + timedelta(seconds=delay),
        "updated_at": utcnow(),
    }
    if dispatched_at is None:
        ours = _undispatched_claim(outbound_id, claim)
    else:
        ours = (
            OutboundMessage.id == outbound_id,
            OutboundMessage.state == SENDING,
            OutboundMessage.dispatched_at == dispatched_at,
        )
        values["attempts"] = OutboundMessage.attempts - 1
    with session_scope() as session:
        given = session.execute(update(OutboundMessage).where(*ours).values(**values)).rowcount
    if not given:
        return "skipped"
    _publish_again(outbound_id, claim.bulk, delay)
    return outcome


def _retry_later(outbound_id: int, exc: TransientError, bulk: bool) -> str:
    with session_scope() as session:
        row = session.get_one(OutboundMessage, outbound_id, with_for_update=True)
        if row.state != SENDING:
            return "skipped"  # settled by a status webhook in the meantime
        if row.attempts >= settings.outbound_max_attempts:
            return _end(session, row, FAILED, dict(exc.error))
        delay = _retry_delay(row.attempts, exc.retry_after)
        # A template retry that met a transient error is still a template retry (and a file
        # uploaded again is not uploaded a third time).
        row.state, row.error, row.dispatched_at = QUEUED, {**exc.error, **_marks_of(row.error)}, None
        row.updated_at, row.next_attempt_at = utcnow(), utcnow() + timedelta(seconds=delay)
    OUTBOUND_SENDS.labels("retry").inc()
    _publish_again(outbound_id, bulk, delay)
    return "retry"


def _retry_delay(attempts: int, asked: float | None) -> float:
    """After the ``attempts``-th failed try (1: the first), as the outbox's settings say."""
    return backoff.equal_jitter(
        attempts - 1, settings.outbound_retry_base_seconds, settings.outbound_retry_max_seconds, asked
    )


def _retry_as_template(outbound_id: int, exc: BlockedWindow, bulk: bool) -> str:
    """The gateway refused the text as outside the 24-hour window (nothing was delivered): the
    row goes again at once, as its template (the claim reads the mark)."""
    with session_scope() as session:
        row = session.get_one(OutboundMessage, outbound_id, with_for_update=True)
        if row.state != SENDING:
            return "skipped"
        row.state, row.dispatched_at, row.updated_at = QUEUED, None, utcnow()
        row.error, row.next_attempt_at = {**exc.error, **_marks_of(row.error), _AS_TEMPLATE: True}, utcnow()
    OUTBOUND_SENDS.labels("retry").inc()
    _publish_again(outbound_id, bulk, None)
    return "retry"


def _finish(outbound_id: int, state: str, exc: GatewayError, *, unconfirmed: bool = False) -> str:
    error = dict(exc.error)
    if unconfirmed:
        error["unconfirmed"] = "no answer after the request was sent; not resent to avoid a duplicate"
    with session_scope() as session:
        row = session.get_one(OutboundMessage, outbound_id, with_for_update=True)
        if row.state != SENDING:
            return "skipped"  # confirmed by a status webhook in the meantime
        return _end(session, row, state, error)


def _end(session: Session, row: OutboundMessage, state: str, error: dict[str, Any]) -> str:
    """The row's end state without a send; the order message waiting behind it may go."""
    row.state, row.error, row.updated_at = state, error, utcnow()
    outbox.release_next(session, row)
    log.warning("outbound message not sent", extra={"outbound_id": row.id, "state": state})
    OUTBOUND_SENDS.labels(state).inc()
    return state


def _publish_again(outbound_id: int, bulk: bool, delay: float | None) -> None:
    """The row's task, again after ``delay`` s; if the broker is away, the sweeper publishes it."""
    try:
        publish.send_outbound([outbound_id], bulk=bulk, countdown=delay)
    except Exception:
        log.warning("could not publish a send again", exc_info=True, extra={"outbound_id": outbound_id})


def _record_sent(outbound_id: int, sent: Sent, contact_id: int | None) -> None:
    """Store the gateway's id. The customer has the message now, so keep trying through a
    database hiccup; a status webhook can still confirm the row if every attempt fails."""
    for attempt in range(_RECORD_ATTEMPTS):
        try:
            with session_scope() as session:
                row = sent_messages.locked_with_contact(session, outbound_id, contact_id)
                if row is not None and row.external_id is None:
                    sent_messages.mark_sent(
                        session, row, sent.external_id, sent.type, sent.request, utcnow(), sent.warning
                    )
            OUTBOUND_SENDS.labels(SENT).inc()
            return
        except DBAPIError:
            log.exception("could not record a sent message", extra={"outbound_id": outbound_id})
            time.sleep(2**attempt)
    log.error(
        "sent message left unrecorded",
        extra={"outbound_id": outbound_id, "external_id": sent.external_id},
    )
