"""The public order tracker page, ``GET /t/{token}``: no sign-in, the signed token is the key.

It shows the order's stages (ordered, paid, shipped, received, or cancelled) with their times,
the courier and the tracking number, as the order events left them, in Indonesian or English
(``?lang=id|en``, else the browser's Accept-Language, else Indonesian). Everything that came from
outside (order id, courier, tracking number) is HTML-escaped. Each opening is counted
(pipeline/tracker.py). An unknown or forged token is a plain 404 that says nothing more.
"""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Header, HTTPException, Query
from fastapi.responses import HTMLResponse

from models import Order
from models.db import session_scope
from pipeline import tracker
from settings import settings

router = APIRouter(tags=["order tracker"])  # a public route: its rule is in api/permissions.py

_WORDS = {
    "id": {
        "title": "Lacak pesanan",
        "order": "Pesanan",
        "created": "Pesanan dibuat",
        "paid": "Pembayaran diterima",
        "shipped": "Dikirim",
        "received": "Diterima",
        "cancelled": "Dibatalkan",
        "courier": "Kurir",
        "tracking_number": "Nomor resi",
        "estimated": "Perkiraan tiba",
        "pending": "belum",
    },
    "en": {
        "title": "Track your order",
        "order": "Order",
        "created": "Order placed",
        "paid": "Payment received",
        "shipped": "Shipped",
        "received": "Delivered",
        "cancelled": "Cancelled",
        "courier": "Courier",
        "tracking_number": "Tracking number",
        "estimated": "Estimated arrival",
        "pending": "not yet",
    },
}
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token is the credential: never leak it onwards
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
}


@router.get("/t/{token}", response_class=HTMLResponse)
def tracker_page(
    token: str,
    lang: Annotated[str | None, Query(pattern="^(id|en)$")] = None,
    accept_language: Annotated[str | None, Header()] = None,
) -> HTMLResponse:
    with session_scope() as session:
        order = tracker.order_of(session, token)
        if order is None:
            raise HTTPException(404, "no such page")
        tracker.viewed(session, order.id)
        page = _page(order, _WORDS[lang or _language(accept_language)])
    return HTMLResponse(page, headers=_HEADERS)


def _language(accept_language: str | None) -> str:
    """The first of id/en the browser names; Indonesian when it names neither."""
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in _WORDS:
            return code
    return "id"


def _when(moment: datetime | None, words: dict[str, str]) -> str:
    if moment is None:
        return words["pending"]
    return moment.astimezone(ZoneInfo(settings.timezone)).strftime("%d-%m-%Y %H:%M")


def _page(order: Order, words: dict[str, str]) -> str:
    stages = [("created", order.ordered_at or order.created_at), ("paid", order.paid_at)]
    stages += [("shipped", order.shipped_at), ("received", order.received_at)]
    if order.cancelled_at is not None:
        stages.append(("cancelled", order.cancelled_at))
    rows = "".join(
        f'<li class="{"done" if moment else "todo"}">{escape(words[stage])}: '
        f"{escape(_when(moment, words))}</li>"
        for stage, moment in stages
    )
    details = [
        (words["courier"], order.courier),
        (words["tracking_number"], order.tracking_number),
        (
            words["estimated"],
            order.estimated_delivery_date.isoformat() if order.estimated_delivery_date else None,
        ),
    ]
    facts = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in details if v)
    title = f"{words['title']} · {settings.business_name}"
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem}"
        ".done{font-weight:bold}.todo{color:#888}dt{font-weight:bold}</style></head><body>"
        f"<h1>{escape(title)}</h1>"
        f"<p>{escape(words['order'])} <strong>{escape(order.external_id)}</strong></p>"
        f'<ol id="stages">{rows}</ol><dl id="details">{facts}</dl></body></html>'
    )
