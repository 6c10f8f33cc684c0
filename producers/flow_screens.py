"""The Flows this system serves: what each screen shows and what a submitted screen does.

Each Flow's layout is a Flow JSON file in templates/flows/ (``GET /api/flows/{name}`` serves it
for upload to Meta); this module answers its data-endpoint requests. A handler gets the customer
(from the signed flow token, never from the request's data) and returns the plaintext response:
the next screen with its data, the same screen with ``error_message``, or ``SUCCESS`` to close
the Flow. Answers are kept per customer in ``flow_answers``; Meta may repeat a request, so a
screen's answer is an upsert, not a second row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Contact, FlowAnswer, Order
from models.base import utcnow
from models.db import dialect_insert
from models.types import room

SUCCESS = "SUCCESS"
# Longest answer kept from one free-text field (a name, a comment).
MAX_FIELD = 1000


@dataclass(frozen=True)
class Step:
    """One data-endpoint request, decrypted: what the customer did on which screen."""

    action: str  # INIT | BACK | data_exchange
    screen: str | None
    data: dict[str, Any]
    flow_token: str


Handler = Callable[[Session, Contact, Step], dict[str, Any]]

INTERESTS = [
    {"id": "produk", "title": "Produk / Products"},
    {"id": "harga", "title": "Harga & promo / Prices"},
    {"id": "reseller", "title": "Jadi reseller / Resell"},
    {"id": "lainnya", "title": "Lainnya / Other"},
]
RATINGS = [{"id": str(n), "title": "★" * n} for n in range(5, 0, -1)]
STAGE_TEXT = {
    "created": "Pesanan diterima / Order received",
    "paid": "Pembayaran diterima / Payment received",
    "shipped": "Dalam pengiriman / Shipped",
    "received": "Sudah sampai / Delivered",
    "cancelled": "Dibatalkan / Cancelled",
}


def lead_form(session: Session, contact: Contact, step: Step) -> dict[str, Any]:
    if step.action in ("INIT", "BACK"):
        return {"screen": "LEAD", "data": {"name": contact.name or "", "interests": INTERESTS}}
    answers = _texts(step.data, "name", "city", "email", "interest")
    if not answers.get("name"):
        return _again("LEAD", "Nama wajib diisi / Please enter your name", name="", interests=INTERESTS)
    if answers.get("interest") not in {choice["id"] for choice in INTERESTS}:
        return _again(
            "LEAD", "Pilih minat Anda / Choose an interest", name=answers["name"], interests=INTERESTS
        )
    # The name the customer typed beats the WhatsApp profile name.
    contact.name = answers["name"][: room(Contact.name)]
    _keep(session, contact, "lead_form", step, answers)
    return _close(step)


def order_status(session: Session, contact: Contact, step: Step) -> dict[str, Any]:
    if step.action in ("INIT", "BACK"):
        latest = session.scalar(
            select(Order.external_id).where(Order.contact_id == contact.id).order_by(Order.id.desc()).limit(1)
        )
        return {"screen": "LOOKUP", "data": {"order_id": latest or ""}}
    order_id = _texts(step.data, "order_id").get("order_id", "")
    # Only the customer's own orders: an order number alone must not reveal someone else's.
    order = session.scalar(select(Order).where(Order.external_id == order_id, Order.contact_id == contact.id))
    if order is None:
        return _again("LOOKUP", "Pesanan tidak ditemukan / Order not found", order_id=order_id)
    _keep(session, contact, "order_status", step, {"order_id": order_id})
    eta = order.estimated_delivery_date
    return {
        "screen": "STATUS",
        "data": {
            "order_id": order.external_id,
            "stage": STAGE_TEXT.get(order.stage, order.stage),
            "courier": order.courier or "-",
            "tracking_number": order.tracking_number or "-",
            "estimated_delivery": eta.isoformat() if eta else "-",
        },
    }


def survey(session: Session, contact: Contact, step: Step) -> dict[str, Any]:
    if step.action in ("INIT", "BACK"):
        return {"screen": "RATE", "data": {"ratings": RATINGS}}
    answers = _texts(step.data, "rating", "comment")
    if answers.get("rating") not in {choice["id"] for choice in RATINGS}:
        return _again("RATE", "Pilih 1 sampai 5 bintang / Choose 1 to 5 stars", ratings=RATINGS)
    _keep(session, contact, "survey", step, {**answers, "rating": int(answers["rating"])})
    return _close(step)


FLOWS: dict[str, Handler] = {"lead_form": lead_form, "order_status": order_status, "survey": survey}


def _texts(data: dict[str, Any], *fields: str) -> dict[str, str]:
    """The named fields as trimmed text; anything else the client sent is not kept."""
    values = {}
    for field in fields:
        value = data.get(field)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            values[field] = str(value).strip()[:MAX_FIELD]
    return values


def _again(screen: str, message: str, **data: Any) -> dict[str, Any]:
    """The same screen again, with Meta's snackbar saying what to fix."""
    return {"screen": screen, "data": {**data, "error_message": message}}


def _close(step: Step) -> dict[str, Any]:
    """Close the Flow; these params come back in the webhook's ``nfm_reply.response_json``."""
    return {
        "screen": SUCCESS,
        "data": {"extension_message_response": {"params": {"flow_token": step.flow_token}}},
    }


def _keep(session: Session, contact: Contact, flow: str, step: Step, answers: dict[str, Any]) -> None:
    now = utcnow()
    insert = dialect_insert(session.get_bind().dialect.name)(FlowAnswer).values(
        contact_id=contact.id,
        flow=flow,
        flow_token=step.flow_token,
        screen=step.screen or "",
        answers=answers,
        created_at=now,
        updated_at=now,
    )
    session.execute(
        insert.on_conflict_do_update(
            index_elements=["flow_token", "screen"], set_={"answers": answers, "updated_at": now}
        )
    )
