"""``/api/inbox``: the inbox rows people need to see, such as events for an unknown channel."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from models import InboxEvent
from models.db import session_scope
from models.inbox import FAILED, PENDING, PROCESSED, UNKNOWN_CHANNEL

router = APIRouter(prefix="/api", tags=["inbox"])  # who may call: api/permissions.py

State = Annotated[str, Query(pattern=f"^({UNKNOWN_CHANNEL}|{FAILED}|{PENDING}|{PROCESSED})$")]


class InboxEventOut(BaseModel):
    id: int
    source: str
    kind: str
    dedupe_key: str
    state: str
    # Which number or session it was addressed to (Cloud API phone_number_id, WAHA session).
    phone_number_id: str | None = None
    session: str | None = None
    received_at: datetime
    occurred_at: datetime | None
    last_error: str | None
    payload: dict[str, Any]


class InboxPage(BaseModel):
    items: list[InboxEventOut]
    next_cursor: int | None


@router.get("/inbox", response_model=InboxPage)
def list_inbox(
    state: State = UNKNOWN_CHANNEL,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[int | None, Query(ge=0)] = None,
) -> InboxPage:
    """Inbox events in one state, newest first: ``unknown_channel`` (the default) lists what came
    for a number or session that is no enabled channel, kept but never processed."""
    with session_scope() as session:
        query = (
            select(InboxEvent).where(InboxEvent.state == state).order_by(InboxEvent.id.desc()).limit(limit)
        )
        if cursor:
            query = query.where(InboxEvent.id < cursor)
        rows = session.scalars(query).all()
        items = [_out(row) for row in rows]
    return InboxPage(items=items, next_cursor=rows[-1].id if len(rows) == limit else None)


def _out(row: InboxEvent) -> InboxEventOut:
    payload = row.payload or {}
    metadata = payload.get("metadata") if isinstance(payload.get("metadata"), dict) else {}
    envelope = payload.get("envelope") if isinstance(payload.get("envelope"), dict) else {}
    return InboxEventOut(
        id=row.id,
        source=row.source,
        kind=row.kind,
        dedupe_key=row.dedupe_key,
        state=row.state,
        phone_number_id=metadata.get("phone_number_id"),
        session=envelope.get("session"),
        received_at=row.received_at,
        occurred_at=row.occurred_at,
        last_error=row.last_error,
        payload=payload,
    )
