"""What the follow-ups achieve, per rules scope (supervisors): answers and orders after a nudge
against those after the silence of held-back follow-ups (``pipeline.followup_effects``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Query
from pydantic import BaseModel

from models.base import utcnow
from models.db import session_scope
from pipeline import followup_effects

router = APIRouter(prefix="/api", tags=["follow-ups"])


class EffectOut(BaseModel):
    kind: str  # adaptive | delivery
    scope: str  # the rules that scheduled them: "default", "contact:<id>", "settings"
    sent: int
    answered: int
    ordered: int
    answer_rate: float | None
    held_out: int  # due and allowed, kept back on purpose
    held_out_answered: int
    held_out_ordered: int
    silence_answer_rate: float | None
    verdict: str  # "fewer answers than silence" | "more answers than silence" | not enough data


class EffectsOut(BaseModel):
    since: datetime
    items: list[EffectOut]
    underperforming: list[str]  # scopes whose nudges get fewer answers than silence


@router.get("/followup-rules/effects", response_model=EffectsOut)
def get_effects(days: int = Query(default=30, ge=1, le=366)) -> EffectsOut:
    """Follow-ups due in the last ``days`` days and what followed them."""
    since = utcnow() - timedelta(days=days)
    with session_scope() as session:
        found = followup_effects.effects(session, since)
    items = [
        EffectOut(
            kind=e.kind,
            scope=e.scope,
            sent=e.sent,
            answered=e.answered,
            ordered=e.ordered,
            answer_rate=e.answer_rate,
            held_out=e.held_out,
            held_out_answered=e.held_out_answered,
            held_out_ordered=e.held_out_ordered,
            silence_answer_rate=e.silence_answer_rate,
            verdict=e.verdict,
        )
        for e in found
    ]
    worse = [e.scope for e in found if e.verdict == followup_effects.WORSE]
    return EffectsOut(since=since, items=items, underperforming=worse)
