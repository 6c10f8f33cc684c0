"""The learned lead score, for supervisors: the current and recent models with their back-test
figures beside the fixed weights', a refit on request, and a rollback (pipeline/lead_model.py).
Who may call: api/permissions.py."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel
from sqlalchemy import select

from api.auth import Caller
from domain import lead_features
from models import LeadModel
from models.db import session_scope
from pipeline import audit as audit_trail
from pipeline import lead_model
from queueing.publish import refit_lead_model
from settings import settings

router = APIRouter(prefix="/api", tags=["lead score"])

RECENT = 20


class WeightOut(BaseModel):
    feature: str  # "campaign:ad:120210000000000777"
    reads: str  # "came from campaign ad:120210000000000777"
    coefficient: float  # how far it moves the log-odds of an order when present


class ModelOut(BaseModel):
    id: int
    scored_by: str  # "model 3": how contacts and routing decisions name it
    created_at: datetime
    outcomes: int  # conversations with a final outcome when it was fitted
    trained_on: int
    tested_on: int
    tested_from: datetime | None  # the back-test: the most recent conversations
    tested_until: datetime | None
    # {"model": {"auc", "brier", "calibration_error"}, "fixed_weights": {...}, "ordered_share"}
    figures: dict[str, Any]
    passed: bool  # beat the fixed weights when fitted
    active: bool
    activated_at: datetime | None
    retired_at: datetime | None
    retired_by: str | None
    rolled_back: bool
    reason: str  # why it scores, or why it does not
    weights: list[WeightOut]  # largest effect first


class LeadModelsOut(BaseModel):
    scored_by: str  # what scores new leads now: "model 3" or "fixed weights"
    active: ModelOut | None
    models: list[ModelOut]  # the most recent refits, newest first
    min_outcomes: int
    hot_chance: float
    warm_chance: float


class RollbackOut(BaseModel):
    rolled_back: int  # the model retired
    scored_by: str  # what scores new leads now
    active: ModelOut | None


def _out(row: LeadModel) -> ModelOut:
    weights = sorted(row.coefficients.items(), key=lambda item: (-abs(item[1]), item[0]))
    return ModelOut(
        id=row.id,
        scored_by=lead_model.scored_by(row.id),
        created_at=row.created_at,
        outcomes=row.outcomes,
        trained_on=row.trained_on,
        tested_on=row.tested_on,
        tested_from=row.tested_from,
        tested_until=row.tested_until,
        figures=row.figures,
        passed=row.passed,
        active=row.active,
        activated_at=row.activated_at,
        retired_at=row.retired_at,
        retired_by=row.retired_by,
        rolled_back=row.rolled_back,
        reason=row.reason,
        weights=[
            WeightOut(feature=name, reads=lead_features.describe(name), coefficient=value)
            for name, value in weights
        ],
    )


@router.get("/lead-model", response_model=LeadModelsOut)
def get_lead_model() -> LeadModelsOut:
    """Which scores the leads, and the recent refits with their back-test figures."""
    with session_scope() as session:
        current = lead_model.active(session)
        recent = session.scalars(select(LeadModel).order_by(LeadModel.id.desc()).limit(RECENT)).all()
        return LeadModelsOut(
            scored_by=lead_model.scored_by(current.id if current else None),
            active=_out(current) if current else None,
            models=[_out(row) for row in recent],
            min_outcomes=settings.lead_model_min_outcomes,
            hot_chance=settings.lead_model_hot_chance,
            warm_chance=settings.lead_model_warm_chance,
        )


@router.post("/lead-model/refit", status_code=202)
def refit_now(caller: Caller) -> dict[str, str]:
    """Queue a refit (beat runs one every LEAD_MODEL_REFIT_SECONDS)."""
    with session_scope() as session:
        audit_trail.record(session, caller.login, "lead_model.refit", "lead_model")
    refit_lead_model()
    return {"status": "queued"}


@router.post("/lead-model/rollback", response_model=RollbackOut)
def roll_back(caller: Caller) -> RollbackOut:
    """Retire the active model: the one active before it scores again, else the fixed weights.
    409 when the fixed weights score already."""
    with session_scope() as session:
        try:
            current, restored = lead_model.rollback(session, caller.login)
        except lead_model.NothingToRollBack:
            raise HTTPException(409, "no learned model is active: the fixed weights score already") from None
        now = lead_model.scored_by(restored.id if restored else None)
        audit_trail.record(
            session,
            caller.login,
            "lead_model.rollback",
            f"lead_model:{current.id}",
            {"scored_by": now},
        )
        return RollbackOut(rolled_back=current.id, scored_by=now, active=_out(restored) if restored else None)
