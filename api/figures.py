"""The team's figures for a chosen period (supervisors): per agent, per channel, per responder
type, as JSON and as CSV. The queries are in ``pipeline.team_figures``."""

from __future__ import annotations

import csv
import io
from dataclasses import asdict
from datetime import date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel

from api.auth import Caller
from api.labels import spreadsheet_cell
from models.db import session_scope
from pipeline.team_figures import Row, TeamFigures, team_figures
from settings import settings

router = APIRouter(prefix="/api", tags=["figures"])

MAX_DAYS = 366
Day = Annotated[date | None, Query(description="a local day (TIMEZONE), YYYY-MM-DD")]


class RowOut(BaseModel):
    key: str  # the agent's login, the channel's name or the responder type
    conversations: int
    closed: int
    closed_in_window: int  # closed inside their 24-hour session
    first_response_median_seconds: float | None
    first_response_p90_seconds: float | None
    within_target_share: float | None  # first responses within their lead class's target
    messages_sent: int
    survey_answers: int
    survey_average: float | None
    labels_given: int
    labelled_contacts: int
    reached_target_share: float | None  # labelled contacts that were given the target label
    open_now: int | None  # agents: conversations open on them now
    available: bool | None  # agents: available for assignment now


class FiguresOut(BaseModel):
    since: datetime  # the period [since, until), in TIMEZONE
    until: datetime
    timezone: str
    target_label: str
    agents: list[RowOut]
    channels: list[RowOut]
    responders: list[RowOut]  # human | automation | ai: the journey by who answered first


def period(since: date | None, until: date | None) -> tuple[datetime, datetime]:
    """Local days ``since``..``until`` (both included; default the last 7 days) as an interval."""
    zone = ZoneInfo(settings.timezone)
    last = until or datetime.now(zone).date()
    first = since or last - timedelta(days=6)
    if first > last:
        raise HTTPException(422, "since: must not be after until")
    if (last - first).days >= MAX_DAYS:
        raise HTTPException(422, f"since: the period is at most {MAX_DAYS} days")
    return datetime.combine(first, time(), zone), datetime.combine(last + timedelta(days=1), time(), zone)


def figures_for(caller: Caller, since: date | None, until: date | None) -> TeamFigures:
    start, end = period(since, until)
    with session_scope() as session:
        return team_figures(session, start, end, settings.target_label, caller.teams)


@router.get("/figures", response_model=FiguresOut)
def get_figures(caller: Caller, since: Day = None, until: Day = None) -> FiguresOut:
    """First-response times, target shares, closures, messages, survey ratings, labels and
    workload, per agent and per channel, for the conversations started in the period."""
    found = figures_for(caller, since, until)
    return FiguresOut(
        since=found.since,
        until=found.until,
        timezone=settings.timezone,
        target_label=found.target_label,
        agents=[_row(r) for r in found.agents],
        channels=[_row(r) for r in found.channels],
        responders=[_row(r) for r in found.responders],
    )


@router.get("/figures.csv", response_class=Response)
def get_figures_csv(caller: Caller, since: Day = None, until: Day = None) -> Response:
    """The same figures, one row per agent, channel and responder type (column ``group``)."""
    found = figures_for(caller, since, until)
    out = io.StringIO()
    columns = list(RowOut.model_fields)
    writer = csv.writer(out)
    writer.writerow(["group", *columns])
    for group, rows in (
        ("agent", found.agents),
        ("channel", found.channels),
        ("responder", found.responders),
    ):
        for row in rows:
            values = _row(row).model_dump()
            values["key"] = spreadsheet_cell(values["key"])  # a login or a WAHA staff name: free text
            writer.writerow([group, *("" if values[c] is None else values[c] for c in columns)])
    name = f"figures-{found.since:%Y%m%d}-{(found.until - timedelta(days=1)):%Y%m%d}.csv"
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _row(row: Row) -> RowOut:
    return RowOut(**{k: v for k, v in asdict(row).items() if not k.startswith("_")})
