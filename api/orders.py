"""An order as the workers left it: its stage, its follow-up, and each automated message."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel
from sqlalchemy import select

from api.auth import Caller
from api.contacts import IdentityConflictOut, conflicts_of
from api.permissions import contact_in_reach
from domain.order_messages import TITLES
from integrations.whatsapp.cloud import is_closed_window_error
from models import DeliveryFollowup, Message, Order, OutboundMessage
from models.db import session_scope
from models.outbox import BLOCKED_WINDOW, SENT
from pipeline import tracker

router = APIRouter(prefix="/api", tags=["orders"])


class FollowupOut(BaseModel):
    due_at: datetime
    state: str  # scheduled | fired | cancelled | missed (its day went by before it could go)
    fired_at: datetime | None


class OrderMessageOut(BaseModel):
    id: int
    trigger: str
    title: str
    # queued | sent | delivered | read | failed | blocked_window | blocked_template | cancelled
    status: str
    sent_as: str | None
    text: str
    external_id: str | None
    attempts: int
    error: dict[str, Any] | None
    created_at: datetime
    sent_at: datetime | None


class OrderOut(BaseModel):
    order_id: str
    contact_id: int
    stage: str
    total: Decimal | None
    currency: str | None
    estimated_delivery_date: date | None
    courier: str | None
    tracking_number: str | None
    ordered_at: datetime | None
    paid_at: datetime | None
    shipped_at: datetime | None
    received_at: datetime | None
    cancelled_at: datetime | None
    followup: FollowupOut | None
    messages: list[OrderMessageOut]
    # The public tracker page (no sign-in; unguessable); None without SECRET_KEY.
    tracker_url: str | None
    # The order's contact was named by an identity another contact (another phone) holds.
    identity_conflicts: list[IdentityConflictOut]


@router.get("/orders/{order_id}", response_model=OrderOut)
def get_order(order_id: str, caller: Caller) -> OrderOut:
    with session_scope() as session:
        order = session.scalars(select(Order).where(Order.external_id == order_id)).first()
        if order is None:
            raise HTTPException(404, f"no order {order_id!r}")
        try:
            contact_in_reach(session, caller, order.contact_id)
        except HTTPException:
            raise HTTPException(404, f"no order {order_id!r}") from None
        followup = session.scalars(
            select(DeliveryFollowup).where(DeliveryFollowup.order_id == order.id)
        ).first()
        rows = session.execute(
            select(OutboundMessage, Message)
            .outerjoin(Message, Message.id == OutboundMessage.message_id)
            .where(OutboundMessage.order_id == order.id)
            .order_by(OutboundMessage.id)
        ).all()
        return OrderOut(
            order_id=order.external_id,
            contact_id=order.contact_id,
            stage=order.stage,
            total=order.total,
            currency=order.currency,
            estimated_delivery_date=order.estimated_delivery_date,
            courier=order.courier,
            tracking_number=order.tracking_number,
            ordered_at=order.ordered_at,
            paid_at=order.paid_at,
            shipped_at=order.shipped_at,
            received_at=order.received_at,
            cancelled_at=order.cancelled_at,
            followup=FollowupOut.model_validate(followup, from_attributes=True) if followup else None,
            messages=[_message_out(row, message) for row, message in rows],
            tracker_url=tracker.url_of(order.id),
            identity_conflicts=conflicts_of(session, order.contact_id),
        )


# The interface's statuses: a message being sent is still queued; "played" (a voice note) is read.
_SPEC_STATUS = {"sending": "queued", "played": "read"}


def _message_out(row: OutboundMessage, message: Message | None) -> OrderMessageOut:
    # Once sent, the message's own delivery status (delivered, read, failed) is the news; a
    # re-engagement failure reported later by webhook is a closed window, as when reported at once.
    status = message.status if row.state == SENT and message is not None and message.status else row.state
    status = _SPEC_STATUS.get(status, status)
    if status == "failed" and message is not None and is_closed_window_error(message.error):
        status = BLOCKED_WINDOW
    return OrderMessageOut(
        id=row.id,
        trigger=row.trigger,
        title=TITLES.get(row.trigger, row.trigger),
        status=status,
        sent_as=row.sent_as,
        text=row.text,
        external_id=row.external_id,
        attempts=row.attempts,
        error=(message.error if message is not None and message.error else row.error),
        created_at=row.created_at,
        sent_at=row.sent_at,
    )
