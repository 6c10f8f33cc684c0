"""The team figures page (supervisors): the figures of ``GET /api/figures`` for a chosen period,
as tables and a bar chart of first-response times, with the CSV of the same figures."""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from api import campaigns as campaigns_api
from api import figures as figures_api
from api.auth import Caller
from pipeline.team_figures import Row, TeamFigures
from web.render import page
from web.session import language_of

router = APIRouter(prefix="/inbox")


@router.get("/figures", response_class=HTMLResponse)
def figures_page(
    request: Request, caller: Caller, since: figures_api.Day = None, until: figures_api.Day = None
) -> Response:
    language = language_of(request, caller)
    try:
        found = figures_api.figures_for(caller, since, until)
    except HTTPException:  # a period the API refuses: the page says so in the reader's language
        return page("figures.html", language, 422, user=caller, found=None, period_wrong=True)
    query = urlencode({"since": found.since.date().isoformat(), "until": last_day(found).isoformat()})
    return page(
        "figures.html",
        language,
        user=caller,
        found=found,
        period_wrong=False,
        last_day=last_day(found),
        csv_url=f"/api/figures.csv?{query}",
        bars=first_response_bars(found.agents),
        # Where the conversations of the period came from (first touch) and what they brought.
        campaigns=campaigns_api.campaigns(caller, found.since, found.until).items,
    )


def last_day(found: TeamFigures) -> date:
    return (found.until - timedelta(days=1)).date()


def first_response_bars(rows: list[Row]) -> list[tuple[str, timedelta, int]]:
    """(agent, median first response, bar length in percent of the slowest) for the chart."""
    timed = [(r.key, r.first_response_median_seconds) for r in rows if r.first_response_median_seconds]
    slowest = max((seconds for _, seconds in timed), default=0)
    return [(key, timedelta(seconds=s), max(2, round(100 * s / slowest))) for key, s in timed]
