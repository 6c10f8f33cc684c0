"""``/inbox``: the team inbox pages (the queue, a conversation) and their fragments.

Server-rendered with Jinja2; htmx swaps fragments in place (the queue list, the thread, the
panel) when ``live.js`` says something changed. Reading goes through the API's functions, so
what a caller sees is what the API would show them. Acting is in ``web/actions.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.auth import Caller, Principal
from models.db import session_scope
from web import conversation as conversation_view
from web import queue
from web.i18n import LANGUAGES
from web.render import page
from web.session import language_of

router = APIRouter(prefix="/inbox", include_in_schema=False)

LeadClass = Annotated[str | None, Query(pattern="^(hot|warm|cold)?$")]


def filters_from(
    tab: str,
    channel: str | None,
    label: str | None,
    lead_class: str | None,
    agent: str | None,
    out_of_hours: bool,
    q: str,
    principal: Principal,
) -> queue.Filters:
    allowed = queue.tabs_for(principal)
    if tab not in allowed:
        raise HTTPException(404 if tab in queue.TABS else 422, f"tab: one of {', '.join(allowed)}")
    try:
        channel_id = int(channel) if channel not in (None, "") else None
    except ValueError as exc:
        raise HTTPException(422, "channel: a channel id") from exc
    return queue.Filters(
        tab=tab,
        channel=channel_id,
        label=label or None,
        lead_class=lead_class or None,
        agent=agent or None,
        out_of_hours=out_of_hours,
        q=q,
    )


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/inbox", failed: bool = False) -> Response:
    """The sign-in form in the page's language; it posts to the dashboard's sign-in (one code)."""
    target = next if next.startswith("/inbox") else "/inbox"
    return page("login.html", language_of(request, None), 401 if failed else 200, next=target, failed=failed)


@dataclass
class QueueQuery:
    """The queue's tab, filters, search and page, as the URL carries them."""

    tab: str = queue.TEAM
    channel: str | None = None
    label: Annotated[str | None, Query(max_length=255)] = None
    lead_class: LeadClass = None
    agent: Annotated[str | None, Query(max_length=64)] = None
    out_of_hours: bool = False
    q: Annotated[str, Query(max_length=100)] = ""
    cursor: Annotated[str | None, Query(max_length=100)] = None


@router.get("", response_class=HTMLResponse)
def queue_page(request: Request, caller: Caller, query: Annotated[QueueQuery, Depends()]) -> Response:
    return _queue(request, caller, "queue.html", query)


@router.get("/queue", response_class=HTMLResponse)
def queue_fragment(request: Request, caller: Caller, query: Annotated[QueueQuery, Depends()]) -> Response:
    """The queue list alone, for htmx to swap in (live refreshes, filters, the next page)."""
    return _queue(request, caller, "_queue_list.html", query)


def _queue(request: Request, caller: Principal, template: str, query: QueueQuery) -> Response:
    tab, channel, label, lead_class = query.tab, query.channel, query.label, query.lead_class
    agent, out_of_hours, q, cursor = query.agent, query.out_of_hours, query.q, query.cursor
    filters = filters_from(tab, channel, label, lead_class, agent, out_of_hours, q, caller)
    with session_scope() as session:
        try:
            found = queue.page(session, caller, filters, cursor)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        channels = queue.channel_choices(session)
    params = {
        k: v
        for k, v in {
            "tab": filters.tab,
            "channel": channel or "",
            "label": label or "",
            "lead_class": lead_class or "",
            "agent": agent or "",
            "out_of_hours": "true" if out_of_hours else "",
            "q": q,
        }.items()
        if v
    }
    return page(
        template,
        language_of(request, caller),
        user=caller,
        tabs=queue.tabs_for(caller),
        filters=filters,
        rows=found.rows,
        next_cursor=found.next_cursor,
        channels=channels,
        query=urlencode(params),
        tab_query=lambda t: urlencode({**params, "tab": t}),
        languages=LANGUAGES,
    )


@router.get("/conversations/{conversation_id}", response_class=HTMLResponse)
def conversation_page(request: Request, conversation_id: int, caller: Caller) -> Response:
    view = conversation_view.load(caller, conversation_id)
    return page(
        "conversation.html",
        language_of(request, caller),
        user=caller,
        view=view,
        flash=None,
        draft="",
        languages=LANGUAGES,
    )


@router.get("/conversations/{conversation_id}/thread", response_class=HTMLResponse)
def thread_fragment(request: Request, conversation_id: int, caller: Caller) -> Response:
    view = conversation_view.load(caller, conversation_id, panel=False)
    return page("_thread.html", language_of(request, caller), user=caller, view=view)


@router.get("/conversations/{conversation_id}/panel", response_class=HTMLResponse)
def panel_fragment(request: Request, conversation_id: int, caller: Caller) -> Response:
    view = conversation_view.load(caller, conversation_id)
    return page("_panel.html", language_of(request, caller), user=caller, view=view)


def to_login(path: str) -> RedirectResponse:
    return RedirectResponse(f"/inbox/login?{urlencode({'next': path})}", status_code=303)
