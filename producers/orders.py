"""``/webhooks/orders``: events from the order system.

An event is checked in full before anything is stored; a refused one answers 422 naming the
field (``{"error", "field"}``) and changes nothing. An accepted event goes into the inbox unique
on its ``id`` and answers 202; a replay of the same id answers 200 and is not processed again.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from domain import phones
from domain.order_events import CONTACT_ID_PREFIX, CRM_NOTE_PREFIX, EVENT_TYPES
from models import Channel, Contact, ContactIdentity, CrmSyncJob, InboxEvent, Order, OrderItem
from models.types import largest, room
from producers import channels
from producers.inbox import NewEvent, store
from producers.rejections import Rejected
from producers.security import parse_json, read_body, verify_signature
from settings import Settings

router = APIRouter(tags=["webhooks"])

# Ways a body could change several orders at once; bulk updates are refused.
_BULK_KEYS = {"orders", "order_ids", "events", "bulk"}
_BULK_ORDER_KEYS = {"ids", "order_ids"}

# The longest value of each text field: what its columns hold, so that an accepted event can
# always be stored (a longer one once got 202, then failed in the worker, unsent).
LIMITS = {
    "id": min(room(InboxEvent.dedupe_key), room(CrmSyncJob.dedupe_key, CRM_NOTE_PREFIX)),
    "contact.id": room(ContactIdentity.value, CONTACT_ID_PREFIX),
    "contact.name": room(Contact.name),
    "order.id": room(Order.external_id),
    "order.currency": room(Order.currency),
    "order.courier": room(Order.courier),
    "order.tracking_number": room(Order.tracking_number),
    "channel": room(Channel.name),
    "order.items[].sku": room(OrderItem.sku),
    "order.items[].name": room(OrderItem.name),
}
MAX_TOTAL = largest(Order.total)
MAX_QTY, MAX_PRICE = largest(OrderItem.qty), largest(OrderItem.price)
MAX_ITEMS = 200  # lines of one order: one Odoo create carries them all
_CENTS = Decimal(1).scaleb(-Order.total.type.scale)


@router.post("/webhooks/orders", status_code=202)
async def receive(request: Request) -> JSONResponse:
    settings: Settings = request.app.state.settings
    body = await read_body(request, settings.max_body_bytes)
    verify_signature(
        settings.order_webhook_secret,
        body,
        request.headers.get("x-signature-256"),
        header="X-Signature-256",
        setting="ORDER_WEBHOOK_SECRET",
        development_mode=settings.development_mode,
    )
    event = validate(parse_json(body), settings)
    channel = event.payload.get("channel")
    if channel and not channels.is_channel_name(await channels.known(), channel):
        raise _invalid("channel", f"no channel is named {channel!r}")
    stored = await store([event])
    if stored.accepted:
        return JSONResponse({"id": event.dedupe_key, "status": "accepted"}, status_code=202)
    return JSONResponse({"id": event.dedupe_key, "status": "duplicate"}, status_code=200)


def validate(document: Any, settings: Settings) -> NewEvent:
    """The inbox event for a valid order-system event; ``Rejected`` (422) naming the field if not."""
    if isinstance(document, list):
        raise _invalid("body", "a list of events: bulk updates are not allowed, send one event per request")
    if not isinstance(document, dict):
        raise _invalid("body", "an order-system event must be a JSON object")
    for key in _BULK_KEYS & document.keys():
        raise _invalid(key, f"'{key}' changes several orders at once: bulk updates are not allowed")

    event_id = _text(document, "id", "id", required=True)
    event_type = document.get("type")
    if event_type not in EVENT_TYPES:
        raise _invalid("type", f"unknown event type {event_type!r}; expected one of {', '.join(EVENT_TYPES)}")
    occurred_at = _moment(document.get("occurred_at"), settings.timezone)

    contact = document.get("contact")
    if not isinstance(contact, dict):
        raise _invalid("contact", "'contact' (an object with a phone) is required on every event")
    raw_phone = contact.get("phone")
    if not isinstance(raw_phone, str) or not raw_phone.strip():
        raise _invalid("contact.phone", "a phone number is required")
    phone = phones.from_user_input(raw_phone, settings.default_region)
    if not phone.is_valid:
        raise _invalid("contact.phone", f"{raw_phone!r} is not a valid phone number ({phone.invalid_reason})")
    _text(contact, "id", "contact.id", scalar_ok=True)
    _text(contact, "name", "contact.name")

    if event_type.startswith("order."):
        _check_order(document.get("order"), event_type)
    _text(document, "channel", "channel")  # the channel its messages go out through (a name)

    payload = {**document, "id": event_id, "occurred_at": occurred_at.isoformat()}
    return NewEvent(
        source="orders", kind=event_type, dedupe_key=event_id, payload=payload, occurred_at=occurred_at
    )


def _check_order(order: Any, event_type: str) -> None:
    if isinstance(order, list):
        raise _invalid("order", "a list of orders: bulk updates are not allowed")
    if not isinstance(order, dict):
        raise _invalid("order", f"'order' is required on {event_type}")
    for key in _BULK_ORDER_KEYS & order.keys():
        raise _invalid(
            f"order.{key}", f"'order.{key}' changes several orders at once: bulk updates are not allowed"
        )
    if isinstance(order.get("id"), list):
        raise _invalid("order.id", "a list of order ids: bulk updates are not allowed")
    _text(order, "id", "order.id", required=True, scalar_ok=True)
    total = order.get("total")
    if total is not None and (isinstance(total, bool) or not isinstance(total, int | float) or total < 0):
        raise _invalid("order.total", f"{total!r} is not an amount (a number, zero or more)")
    # Stored rounded to cents, as the worker will store it. Compared first as it is: rounding an
    # amount of more digits than Decimal's context holds (1e26) raises instead of answering.
    if total is not None and _above_largest(Decimal(str(total))):
        raise _invalid("order.total", f"{total!r} is more than the largest amount kept ({MAX_TOTAL})")
    for key in ("currency", "courier", "tracking_number"):
        _text(order, key, f"order.{key}")
    delivery = order.get("estimated_delivery_date")
    if delivery is not None and not _is_date(delivery):
        raise _invalid("order.estimated_delivery_date", f"{delivery!r} is not a date (YYYY-MM-DD)")
    if event_type == "order.shipped" and not (order.get("tracking_number") or "").strip():
        raise _invalid("order.tracking_number", "order.shipped needs the tracking number")
    _check_items(order.get("items"))


def _check_items(items: Any) -> None:
    """``order.items``, optional: a list of ``{sku, name, qty, price}``, each within its column."""
    if items is None:
        return
    if not isinstance(items, list) or len(items) > MAX_ITEMS:
        raise _invalid("order.items", f"'order.items' must be a list of at most {MAX_ITEMS} items")
    for index, item in enumerate(items):
        where = f"order.items[{index}]"
        if not isinstance(item, dict):
            raise _invalid(where, f"'{where}' must be an object with sku, name, qty and price")
        for key in ("sku", "name"):
            value = item.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and key == "sku":
                value = str(value)
            limit = LIMITS[f"order.items[].{key}"]
            if value is None and key == "sku":
                continue
            if not isinstance(value, str) or not value.strip() or len(value) > limit:
                raise _invalid(
                    f"{where}.{key}", f"'{where}.{key}' must be a string of 1 to {limit} characters"
                )
        for key, most in (("qty", MAX_QTY), ("price", MAX_PRICE)):
            value = item.get(key)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or value < 0
                or (key == "qty" and value == 0)
            ):
                kind = "above zero" if key == "qty" else "zero or more"
                raise _invalid(f"{where}.{key}", f"'{where}.{key}' must be a number {kind}")
            if Decimal(str(value)).quantize(_CENTS, ROUND_HALF_UP) > most:
                raise _invalid(f"{where}.{key}", f"'{where}.{key}' is more than the largest kept ({most})")


def _is_date(value: Any) -> bool:
    if not isinstance(value, str) or len(value) != 10:
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _text(
    container: dict[str, Any], key: str, field: str, *, required: bool = False, scalar_ok: bool = False
) -> str | None:
    """A string field (a number too where ``scalar_ok``: ids are often numeric) of at most
    ``LIMITS[field]`` characters."""
    value = container.get(key)
    if value is None or value == "":
        if required:
            raise _invalid(field, f"'{field}' is required")
        return None
    if scalar_ok and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    limit = LIMITS[field]
    if not isinstance(value, str) or len(value) > limit:
        raise _invalid(field, f"'{field}' must be a string of at most {limit} characters")
    return value


def _moment(value: Any, timezone: str) -> datetime:
    """``occurred_at``: ISO 8601; without an offset it is local time (TIMEZONE); absent, now."""
    if value is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise _invalid("occurred_at", f"{value!r} is not an ISO 8601 date and time")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01 east of UTC, 9999-12-31 west of it: not a year 1-9999 in UTC
        raise _invalid("occurred_at", f"{value!r} is out of the range of dates") from None


def _invalid(field: str, error: str) -> Rejected:
    return Rejected(422, error, field=field, reason="invalid")


def _above_largest(amount: Decimal) -> bool:
    return amount > MAX_TOTAL or amount.quantize(_CENTS, ROUND_HALF_UP) > MAX_TOTAL
