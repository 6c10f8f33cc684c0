"""Broadcasts: one message to every contact that has a label now, and how it is going.

``POST /api/broadcasts`` stores the broadcast and publishes its expansion task (answering 202
with its id only once both happened; if the broker is away nothing is kept and the answer is
503, so a retry cannot make two broadcasts). The task (``workers/broadcasts.py``) writes one outbox
row per contact; the outbound worker sends them within the shared rate limit, as text inside the
customer's 24-hour window and as the template outside it (``blocked_window`` without one).
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain.outbound_kinds import NotSendable
from integrations.whatsapp.cloud import is_closed_window_error
from models import Broadcast, Message, OutboundMessage
from models.db import session_scope
from models.labels import label_ids_named
from models.outbox import BLOCKED_WINDOW, CANCELLED, FAILED, QUEUED, SENDING, SENT
from models.types import room
from pipeline import channels, rich_messages
from queueing.publish import expand_broadcast

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api", tags=["broadcasts"])

_DELIVERED = frozenset({"delivered", "read", "played"})


class TemplateIn(BaseModel):
    """An approved Cloud API template, sent to contacts whose 24-hour window is closed."""

    name: str = Field(min_length=1, max_length=512)
    language: str = Field(min_length=2, max_length=16)
    parameters: list[str] = []


class BroadcastIn(BaseModel):
    label: str = Field(min_length=1, max_length=255)
    text: str | None = Field(default=None, min_length=1, max_length=4096)
    # Any outbound kind instead of the text: a Cloud API message object without
    # messaging_product/to (docs/rich-messages.md), checked for the default channel's gateway.
    message: dict[str, Any] | None = None
    template: TemplateIn | None = None

    @model_validator(mode="after")
    def _text_or_message(self) -> BroadcastIn:
        if (self.text is None) == (self.message is None):
            raise ValueError("text: give exactly one of text or message")
        return self


class BroadcastOut(BaseModel):
    id: int
    label: str
    text: str
    message: dict[str, Any] | None
    template: dict[str, Any] | None
    state: str  # expanding | expanded
    created_at: datetime
    expanded_at: datetime | None
    total: int  # contacts with the label when expanded (messages + skipped)
    queued: int  # not sent yet (waiting for the rate limit or a retry)
    sent: int  # accepted by the gateway (delivered and read included)
    delivered: int  # of those, reported delivered or read
    failed: int
    blocked_window: int  # window closed and no template
    # Opted out (STOP/BERHENTI) before the expansion, or after it, before their message went.
    skipped_opted_out: int
    cancelled: int  # not sent for another reason found at send time (automation paused)
    sent_as: dict[str, int]  # {"text": n, "template": m}


@router.post("/broadcasts", status_code=202)
def create_broadcast(
    request: BroadcastIn,
    idempotency_key: Annotated[
        str | None, Header(alias="Idempotency-Key", min_length=1, max_length=room(Broadcast.idempotency_key))
    ] = None,
) -> JSONResponse:
    """Send to everyone with the label. Repeat the request with the same ``Idempotency-Key``
    safely: it answers with the broadcast the key started, and nothing is sent again."""
    wanted = _as_stored(request)
    with session_scope() as session:
        wanted.update(_checked(session, request.message))
    if idempotency_key is not None:
        earlier = _by_key(idempotency_key, wanted)
        if earlier is not None:
            return _replayed(earlier)
    try:
        with session_scope() as session:
            if not session.scalars(label_ids_named(request.label)).first():
                raise HTTPException(422, f"label: no label named {request.label!r}")
            broadcast = Broadcast(idempotency_key=idempotency_key, **wanted)
            session.add(broadcast)
            session.flush()
            broadcast_id = broadcast.id
    except IntegrityError:
        # The same key, committed by a request running at the same time: that one is the broadcast.
        earlier = _by_key(idempotency_key, wanted) if idempotency_key is not None else None
        if earlier is None:
            raise
        return _replayed(earlier)
    try:
        expand_broadcast(broadcast_id)
    except Exception:
        log.exception("broker unavailable; broadcast withdrawn", extra={"broadcast_id": broadcast_id})
        with session_scope() as session:
            session.delete(session.get_one(Broadcast, broadcast_id))
        return JSONResponse({"detail": "the queue is unavailable; nothing was sent, retry later"}, 503)
    return JSONResponse({"id": broadcast_id, "status": "accepted"}, status_code=202)


def _as_stored(request: BroadcastIn) -> dict[str, Any]:
    return {
        "label": request.label.strip(),
        "text": request.text,
        "template": request.template.model_dump() if request.template else None,
    }


def _checked(session: Session, message: dict[str, Any] | None) -> dict[str, Any]:
    """The rich message's columns (its readable text as ``text``); 422 naming the field."""
    if message is None:
        return {"body": None, "media_file_id": None}
    gateway = rich_messages.gateway_kind(session, channels.default_channel_id(session))
    try:
        prepared = rich_messages.prepare(session, message, gateway)
    except NotSendable as exc:
        raise HTTPException(422, f"message.{exc}") from None
    return {"text": prepared.text, "body": prepared.body, "media_file_id": prepared.media_file_id}


def _by_key(key: str, wanted: dict[str, Any]) -> int | None:
    """The broadcast this key started, if any; 422 if it was started with another body."""
    with session_scope() as session:
        earlier = session.scalars(select(Broadcast).where(Broadcast.idempotency_key == key)).first()
        if earlier is None:
            return None
        if {name: getattr(earlier, name) for name in wanted} != wanted:
            raise HTTPException(
                422,
                f"Idempotency-Key: {key!r} was used for broadcast {earlier.id} with another label, text "
                "or template; use a new key for a new broadcast",
            )
        return earlier.id


def _replayed(broadcast_id: int) -> JSONResponse:
    """The answer the first request got (the header says it is a repeat); nothing new is queued."""
    return JSONResponse(
        {"id": broadcast_id, "status": "accepted"}, status_code=202, headers={"Idempotent-Replayed": "true"}
    )


@router.get("/broadcasts/{broadcast_id}", response_model=BroadcastOut)
def get_broadcast(broadcast_id: int) -> BroadcastOut:
    with session_scope() as session:
        broadcast = session.get(Broadcast, broadcast_id)
        if broadcast is None:
            raise HTTPException(404, f"no broadcast {broadcast_id}")
        rows = session.execute(
            select(OutboundMessage.state, OutboundMessage.sent_as, Message.status, func.count())
            .outerjoin(Message, Message.id == OutboundMessage.message_id)
            .where(OutboundMessage.broadcast_id == broadcast_id)
            .group_by(OutboundMessage.state, OutboundMessage.sent_as, Message.status)
        ).all()
        # A send the gateway accepted can still fail later; a re-engagement failure is a closed window.
        late_blocks = sum(
            1
            for error in session.scalars(
                select(Message.error)
                .join(OutboundMessage, OutboundMessage.message_id == Message.id)
                .where(OutboundMessage.broadcast_id == broadcast_id, Message.status == FAILED)
            )
            if is_closed_window_error(error)
        )
        # The send-time claim cancels the message of a contact who opted out since the expansion.
        opted_out_since = sum(
            1
            for error in session.scalars(
                select(OutboundMessage.error).where(
                    OutboundMessage.broadcast_id == broadcast_id, OutboundMessage.state == CANCELLED
                )
            )
            if (error or {}).get("opted_out")
        )
        counts: Counter[str] = Counter()
        sent_as: Counter[str] = Counter()
        for state, kind, status, count in rows:
            counts[status if state == SENT and status else state] += count
            if state == SENT and kind:
                sent_as[kind] += count
        return BroadcastOut(
            id=broadcast.id,
            label=broadcast.label,
            text=broadcast.text,
            message=broadcast.body,
            template=broadcast.template,
            state=broadcast.state,
            created_at=broadcast.created_at,
            expanded_at=broadcast.expanded_at,
            total=broadcast.targeted,
            queued=counts[QUEUED] + counts[SENDING],
            sent=counts[SENT] + sum(counts[s] for s in _DELIVERED),
            delivered=sum(counts[s] for s in _DELIVERED),
            failed=counts[FAILED] - late_blocks,
            blocked_window=counts[BLOCKED_WINDOW] + late_blocks,
            skipped_opted_out=broadcast.skipped_opted_out + opted_out_since,
            cancelled=counts[CANCELLED] - opted_out_since,
            sent_as=dict(sent_as),
        )
