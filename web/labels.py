"""The labels page (supervisors): what the label dashboard showed, as one page of the inbox.

Contacts per label, how contacts entered and left each label over the last 7, 30 or 90 days (an
inline SVG drawn here, no script), labels given per staff member and the share that reached the
target label, lead sources by the ad's headline, and the contacts of one label with the CSV,
a page of PAGE_SIZE at a time (by contact id, "more" for the next; the total is counted, so the
figure shown is every contact, not the page's). The numbers come from ``api/labels.py``, the
queries the API's ``/api/labels`` uses too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from api import labels as data
from api.auth import Caller
from models.db import session_scope
from web.i18n import Formats
from web.render import page
from web.session import language_of

router = APIRouter(prefix="/inbox", include_in_schema=False)

PERIODS = (7, 30, 90)
DEFAULT_PERIOD = 30
PAGE_SIZE = 50  # contacts listed at a time: a page to read, not every member at once
MAX_PAGE_SIZE = 500
FLOW_HEIGHT = 100  # the flow chart's drawing units: entered above the middle, left below


@dataclass(frozen=True)
class Bar:
    name: str
    value: int
    length: int  # percent of the longest bar
    color: str | None = None


@dataclass(frozen=True)
class FlowDay:
    day: date
    entered: int
    left: int
    x: int
    up: float  # the entered column's height in drawing units
    down: float


@dataclass(frozen=True)
class FlowChart:
    label: str
    entered: int
    left: int
    width: int
    days: list[FlowDay]


@router.get("/labels", response_class=HTMLResponse)
def labels_page(
    request: Request,
    caller: Caller,
    days: str = str(DEFAULT_PERIOD),  # any other value than 7, 30, 90: the page says so (422)
    label: Annotated[str | None, Query(max_length=255)] = None,
    q: Annotated[str, Query(max_length=100)] = "",
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,  # the contact list's page: ids above this one
    size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = PAGE_SIZE,  # contacts per page
) -> Response:
    language = language_of(request, caller)
    target: str = request.app.state.settings.target_label
    if days not in {str(p) for p in PERIODS}:  # a period the page does not draw: say which it does
        return page("labels.html", language, 422, user=caller, period_wrong=True, periods=PERIODS, days=None)
    period, formats = int(days), Formats(language)
    with session_scope() as session:
        counts = data.label_counts(session, by_staff=False)
        dates, flow = data.label_flow(session, period)
        staff = data.staff_quality(session, target, period)
        sources = data.lead_sources(session, target)
        headlines = data.ad_headlines(session, [s.source for s in sources])
        names = [item.name for item in counts]
        chosen = label or (target if target in names else (names[0] if names else None))
        search = q.strip().lower()
        # One more than is shown, to know whether there are more.
        members = data.segment(session, chosen, after=after, limit=size + 1, search=search) if chosen else []
        # The whole list on its first page: its length is the total, no count needed.
        whole = after == 0 and len(members) <= size
        total = len(members) if whole else data.segment_size(session, chosen, search) if chosen else 0
    return page(
        "labels.html",
        language,
        user=caller,
        period_wrong=False,
        periods=PERIODS,
        days=period,
        target=target,
        label_bars=bars([(i.name, i.contacts, i.color_hex) for i in counts]),
        flows=flow_charts(dates, flow),
        # Each day's name once, not once per label: a 90-day page of 20 labels has 1,800 columns.
        day_names={day: formats.date(day) for day in dates},
        first_day=dates[0],
        last_day=dates[-1],
        staff=list(zip(staff, bars([(s.staff, s.labels_given, None) for s in staff]), strict=True)),
        sources=list(zip(sources, bars([(s.source, s.contacts, None) for s in sources]), strict=True)),
        headlines=headlines,
        names=names,
        chosen=chosen,
        q=q,
        members=members[:size],
        total=total,
        paged=after > 0,
        more_url=(
            contacts_url(period, chosen, q, members[size - 1].id, size) if len(members) > size else None
        ),
        first_url=contacts_url(period, chosen, q, 0, size),
        csv_url=f"/dashboard/contacts.csv?{urlencode({'label': chosen or ''})}",
        period_url=lambda p: "/inbox/labels?" + urlencode({"days": p, **({"label": label} if label else {})}),
    )


def contacts_url(days: int, label: str | None, q: str, after: int, size: int = PAGE_SIZE) -> str:
    """The contact list's page of the contacts above ``after`` (0: the first page)."""
    query: dict[str, str | int] = {"days": days, "label": label or ""}
    query |= {"q": q} if q else {}
    query |= {"after": after} if after else {}
    query |= {"size": size} if size != PAGE_SIZE else {}
    return f"/inbox/labels?{urlencode(query)}#contacts"


def bars(rows: list[tuple[str, int, str | None]]) -> list[Bar]:
    """Each row's bar length in percent of the largest value (a value above 0 shows at least 2%)."""
    top = max((value for _, value, _ in rows), default=0) or 1
    return [
        Bar(name, value, max(2, round(100 * value / top)) if value else 0, color)
        for name, value, color in rows
    ]


def flow_charts(dates: list[date], flow: dict[str, dict]) -> list[FlowChart]:
    """Per label, a column per day: up for the contacts that entered it, down for those that left,
    scaled to the label's busiest day."""
    column = 10
    charts = []
    for name in sorted(flow, key=str.lower):
        per_day = flow[name]
        top = max(max(d.entered, d.left) for d in per_day.values()) or 1
        half = FLOW_HEIGHT / 2
        charts.append(
            FlowChart(
                label=name,
                entered=sum(d.entered for d in per_day.values()),
                left=sum(d.left for d in per_day.values()),
                width=column * len(dates),
                days=[
                    FlowDay(
                        day,
                        per_day[day].entered,
                        per_day[day].left,
                        i * column,
                        round(half * per_day[day].entered / top, 1),
                        round(half * per_day[day].left / top, 1),
                    )
                    for i, day in enumerate(dates)
                ],
            )
        )
    return charts
