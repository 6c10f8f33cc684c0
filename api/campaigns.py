"""Tracked links, their redirect, the campaign figures and the Conversions API outbox.

- ``POST /api/links`` (admin): a short link ``/r/{code}`` for a URL with its UTM source, medium
  and campaign. A WhatsApp chat URL (wa.me, api.whatsapp.com) gets ``ref:CODE`` at the end of its
  prefilled text, so the message that follows names the link (pipeline/attribution.py).
- ``GET /r/{code}`` (public): the click is recorded and the answer is a 302 to the URL stored with
  the code, never to anything the request says (no open redirect); an unknown code is a 404 page.
- ``GET /api/campaigns`` (supervisors): per campaign, conversations and contacts it brought,
  orders credited to it (last touch), paid orders, revenue, conversion rate and median
  first-response time; within the caller's teams.
- ``GET /api/conversions`` (admin): the events for Meta's Conversions API and how each went.
"""

from __future__ import annotations

import re
import secrets
import statistics
import string
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.auth import Caller
from domain.outcomes import ORDERED, PAID
from models import Conversation, Order
from models.base import utcnow
from models.campaigns import ORGANIC, ConversionEvent, LinkClick, Touch, TrackedLink
from models.db import dialect_insert, session_scope
from models.orders import CANCELLED
from pipeline import attribution, audit
from pipeline.teams import conversations_of_teams

router = APIRouter(tags=["campaigns"])

CODE = re.compile(r"[A-Za-z0-9_-]{3,32}")
_ALPHABET = string.ascii_letters + string.digits
MAX_URL = 2000
DEFAULT_DAYS = 30


class LinkIn(BaseModel):
    url: str = Field(min_length=1, max_length=MAX_URL)
    utm_source: str = Field(min_length=1, max_length=128)
    utm_medium: str = Field(min_length=1, max_length=128)
    utm_campaign: str = Field(min_length=1, max_length=128)
    code: str | None = Field(default=None, pattern=CODE.pattern)

    @field_validator("url")
    @classmethod
    def _web_address(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL with a host")
        if any(ch.isspace() or ord(ch) < 32 for ch in url):
            raise ValueError("must not contain spaces or control characters")
        return url


class LinkOut(BaseModel):
    code: str
    short_url: str
    url: str  # where /r/{code} redirects (a WhatsApp link with its ref:CODE text)
    utm_source: str
    utm_medium: str
    utm_campaign: str


class CampaignOut(BaseModel):
    campaign: str  # as the team knows it: the ad's headline, the link's utm_campaign, ...
    kind: str  # ad | link | broadcast | organic
    key: str  # "ad:<source_id>", "link:<utm_campaign>", "broadcast:<id>", "organic"
    contacts: int
    conversations: int
    orders: int  # orders whose last touch before them was this campaign
    paid_orders: int
    revenue: Decimal  # of the paid orders (not cancelled), in ``currency``
    currency: str | None
    revenue_by_currency: dict[str, Decimal]  # when orders came in several currencies
    conversion_rate: float | None  # conversations that ended ordered or paid, over all of them
    median_first_response_seconds: float | None


class CampaignReport(BaseModel):
    since: datetime
    until: datetime
    items: list[CampaignOut]


class ConversionOut(BaseModel):
    id: int
    event_id: str
    event_name: str
    conversation_id: int
    state: str  # queued | sent | failed
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    sent_at: datetime | None
    created_at: datetime


@router.post("/api/links", response_model=LinkOut, status_code=201)
def create_link(body: LinkIn, caller: Caller, request: Request) -> LinkOut:
    """A tracked short link; a chosen ``code`` already taken answers 409."""
    codes = [body.code] if body.code else [_new_code() for _ in range(5)]
    with session_scope() as session:
        for code in codes:
            url = attribution.with_code(body.url, code)
            inserted = session.scalar(
                dialect_insert(session.get_bind().dialect.name)(TrackedLink)
                .values(
                    code=code,
                    url=url,
                    utm_source=body.utm_source,
                    utm_medium=body.utm_medium,
                    utm_campaign=body.utm_campaign,
                    created_by=caller.login,
                    created_at=utcnow(),
                )
                .on_conflict_do_nothing(index_elements=["code"])
                .returning(TrackedLink.id)
            )
            if inserted is not None:
                break
        else:
            raise HTTPException(409, f"code: {body.code!r} is taken" if body.code else "code: try again")
        details = body.model_dump(exclude={"code"}) | {"redirects_to": url}
        audit.record(session, caller.login, "link.created", f"link:{code}", details)
    base = request.app.state.settings.public_url or str(request.base_url)
    return LinkOut(
        code=code,
        short_url=f"{base.rstrip('/')}/r/{code}",
        url=url,
        utm_source=body.utm_source,
        utm_medium=body.utm_medium,
        utm_campaign=body.utm_campaign,
    )


@router.get("/r/{code:path}", include_in_schema=False)  # any /r/... answers the 404 page
def follow_link(code: str) -> Response:
    """Record the click, and send the browser to the URL registered with the code (only that)."""
    if not CODE.fullmatch(code):
        return _not_found()
    with session_scope() as session:
        link = session.scalars(select(TrackedLink).where(TrackedLink.code == code)).first()
        if link is None:
            return _not_found()
        session.add(LinkClick(link_id=link.id, clicked_at=utcnow()))
        url = link.url
    # no-store: every visit comes here and is counted, none is answered from a cache.
    return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})


@router.get("/api/campaigns", response_model=CampaignReport)
def campaigns(caller: Caller, since: datetime | None = None, until: datetime | None = None) -> CampaignReport:
    """Per campaign, over conversations started and orders placed in [since, until) (default:
    the last 30 days)."""
    until = _aware(until, "until") if until else utcnow()
    since = _aware(since, "since") if since else until - timedelta(days=DEFAULT_DAYS)
    if since >= until:
        raise HTTPException(422, "since: must be before until")
    with session_scope() as session:
        items = _report(session, caller.teams, since, until)
    return CampaignReport(since=since, until=until, items=items)


@router.get("/api/conversions", response_model=list[ConversionOut])
def conversions(
    caller: Caller,
    state: Annotated[str | None, Query(pattern="^(queued|sent|failed)$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ConversionOut]:
    """The Conversions API events, newest first (``state=failed``: the ones Meta never took)."""
    query = select(ConversionEvent).order_by(ConversionEvent.id.desc()).limit(limit)
    if state:
        query = query.where(ConversionEvent.state == state)
    with session_scope() as session:
        rows = session.scalars(query).all()
        return [ConversionOut.model_validate(row, from_attributes=True) for row in rows]


def _report(
    session: Session, teams: frozenset[str] | None, since: datetime, until: datetime
) -> list[CampaignOut]:
    conversations = select(
        Conversation.campaign,
        Conversation.contact_id,
        Conversation.outcome,
        Conversation.first_response_seconds,
    ).where(Conversation.started_at >= since, Conversation.started_at < until)
    placed = func.coalesce(Order.ordered_at, Order.created_at)
    orders = select(Order.last_campaign, Order.stage, Order.paid_at, Order.total, Order.currency).where(
        placed >= since, placed < until
    )
    if teams is not None:  # a supervisor's figures: their teams' conversations and what came of them
        in_reach = conversations_of_teams(teams)
        conversations = conversations.where(Conversation.id.in_(in_reach))
        orders = orders.where(Order.conversation_id.in_(in_reach))
    stats: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "contacts": set(),
            "conversations": 0,
            "converted": 0,
            "responses": [],
            "orders": 0,
            "paid": 0,
            "revenue": Counter(),
        }
    )
    for campaign, contact_id, outcome, first_response in session.execute(conversations):
        row = stats[campaign or ORGANIC]
        row["contacts"].add(contact_id)
        row["conversations"] += 1
        row["converted"] += outcome in (ORDERED, PAID)
        if first_response is not None:
            row["responses"].append(first_response)
    for campaign, stage, paid_at, total, currency in session.execute(orders):
        row = stats[campaign or ORGANIC]
        row["orders"] += 1
        if paid_at is not None and stage != CANCELLED:
            row["paid"] += 1
            row["revenue"][currency or ""] += total or Decimal(0)
    names = _names(session, [key for key in stats if key != ORGANIC])
    return sorted(
        (_campaign_out(key, names.get(key, key), row) for key, row in stats.items()),
        key=lambda item: (-item.revenue, -item.conversations, item.key),
    )


def _campaign_out(key: str, name: str, row: dict[str, Any]) -> CampaignOut:
    revenue: Counter[str] = row["revenue"]
    currency = max(revenue, key=lambda c: revenue[c]) if revenue else None
    return CampaignOut(
        campaign=ORGANIC if key == ORGANIC else name,
        kind=key.partition(":")[0],
        key=key,
        contacts=len(row["contacts"]),
        conversations=row["conversations"],
        orders=row["orders"],
        paid_orders=row["paid"],
        revenue=revenue[currency] if currency is not None else Decimal(0),
        currency=currency or None,
        revenue_by_currency={c or "?": amount for c, amount in revenue.items()},
        conversion_rate=row["converted"] / row["conversations"] if row["conversations"] else None,
        median_first_response_seconds=statistics.median(row["responses"]) if row["responses"] else None,
    )


def _names(session: Session, keys: list[str]) -> dict[str, str]:
    """Each campaign's name as its latest touch gave it (an ad's headline may change)."""
    names: dict[str, str] = {}
    if keys:
        rows = session.execute(
            select(Touch.campaign, Touch.name).where(Touch.campaign.in_(keys)).order_by(Touch.occurred_at)
        )
        names = {campaign: name for campaign, name in rows}
    return names


def _aware(moment: datetime, field: str) -> datetime:
    if moment.tzinfo is None:
        raise HTTPException(422, f"{field}: give a time zone (e.g. 2026-12-01T00:00:00Z)")
    return moment


def _new_code() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(8))


def _not_found() -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><title>Link not found</title><h1>Link not found</h1>"
        "<p>This link does not exist (any more). Check the address you were given.</p>",
        status_code=404,
    )
