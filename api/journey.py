"""Messaging journey metrics: how fast customers got a first answer and from whom, how many
conversations ended inside their 24-hour session, and what the satisfaction survey says."""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import func, select

from domain.automation_content import SURVEY
from models import Conversation, OutboundMessage, RoutingDecision, SurveyResponse
from models.base import utcnow
from models.db import session_scope
from models.outbox import SENT

router = APIRouter(prefix="/api", tags=["journey"])


class FirstResponse(BaseModel):
    responder: str  # human | automation | ai
    conversations: int
    median_seconds: float
    mean_seconds: float


class SurveySummary(BaseModel):
    sent: int
    answered: int
    average_rating: float | None
    ratings: dict[int, int]  # rating (1-5) -> how many answers


class Journey(BaseModel):
    since: datetime
    conversations: int
    closed: int
    closed_within_24h: int
    first_response: list[FirstResponse]
    routed_to: dict[str, int]  # routing decisions by responder
    survey: SurveySummary


@router.get("/journey", response_model=Journey)
def journey(days: int = Query(default=7, ge=1, le=366)) -> Journey:
    """Conversations started in the last ``days`` days."""
    since = utcnow() - timedelta(days=days)
    started = Conversation.started_at >= since
    with session_scope() as session:
        total, closed, in_window = session.execute(
            select(
                func.count(Conversation.id),
                func.count(Conversation.closed_at),
                func.count(Conversation.id).filter(Conversation.closed_in_window.is_(True)),
            ).where(started)
        ).one()
        by_responder: dict[str, list[float]] = {}
        for responder, seconds in session.execute(
            select(Conversation.first_responder, Conversation.first_response_seconds).where(
                started, Conversation.first_responder.is_not(None)
            )
        ):
            by_responder.setdefault(responder, []).append(seconds)
        routed = dict(
            session.execute(
                select(RoutingDecision.responder, func.count(RoutingDecision.id))
                .where(RoutingDecision.created_at >= since)
                .group_by(RoutingDecision.responder)
            ).all()
        )
        surveys_sent = session.scalar(
            select(func.count(OutboundMessage.id)).where(
                OutboundMessage.trigger == SURVEY,
                OutboundMessage.state == SENT,
                OutboundMessage.sent_at >= since,
            )
        )
        ratings = dict(
            session.execute(
                select(SurveyResponse.rating, func.count(SurveyResponse.id))
                .where(SurveyResponse.created_at >= since)
                .group_by(SurveyResponse.rating)
            ).all()
        )
    answered = sum(ratings.values())
    return Journey(
        since=since,
        conversations=total,
        closed=closed,
        closed_within_24h=in_window,
        first_response=[
            FirstResponse(
                responder=responder,
                conversations=len(values),
                median_seconds=statistics.median(values),
                mean_seconds=statistics.fmean(values),
            )
            for responder, values in sorted(by_responder.items())
        ],
        routed_to=routed,
        survey=SurveySummary(
            sent=surveys_sent or 0,
            answered=answered,
            average_rating=sum(r * n for r, n in ratings.items()) / answered if answered else None,
            ratings={int(r): n for r, n in sorted(ratings.items())},
        ),
    )
