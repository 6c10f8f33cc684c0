"""The learned lead score's models: each refit stored with its figures, whether it scores the
leads now, and why (or why not). Coefficients are JSON, never a pickle: a row can be read by a
person and loaded by any version of the code (pipeline/lead_model.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Text
from sqlalchemy import text as sql
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType, utcnow
from models.types import BigId


class LeadModel(Base):
    __tablename__ = "lead_models"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Conversations with a final outcome it was fitted on and back-tested on, and the back-test's
    # period (the most recent conversations).
    outcomes: Mapped[int]
    trained_on: Mapped[int]
    tested_on: Mapped[int]
    tested_from: Mapped[datetime | None]
    tested_until: Mapped[datetime | None]
    # The fitted logistic regression (None when too few outcomes to fit one).
    features: Mapped[list[str]] = mapped_column(JSONType)
    intercept: Mapped[float | None]
    coefficients: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # The back-test: {"model": {"auc", "brier", "calibration_error"}, "fixed_weights": {...}}.
    figures: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # Whether it beat the fixed weights when fitted (only such a model may score).
    passed: Mapped[bool] = mapped_column(default=False)
    # At most one row is active: it scores the leads; none active: the fixed weights do.
    active: Mapped[bool] = mapped_column(default=False)
    activated_at: Mapped[datetime | None]
    retired_at: Mapped[datetime | None]
    retired_by: Mapped[str | None] = mapped_column(Text)  # "model 4" (a refit) or a supervisor's login
    # Rolled back by a supervisor: never made active again by a later rollback.
    rolled_back: Mapped[bool] = mapped_column(default=False)
    reason: Mapped[str] = mapped_column(Text)  # why it scores, or why it does not

    __table_args__ = (
        # One active model at most, enforced by the database.
        Index(
            "ux_lead_models_active",
            "active",
            unique=True,
            postgresql_where=sql("active"),
            sqlite_where=sql("active"),
        ),
    )
