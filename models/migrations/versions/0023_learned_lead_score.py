"""the learned lead score: fitted models with their back-test figures; what scored each lead

Revision ID: 0023
Revises: 0020
Create Date: 2026-12-07 08:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0023"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _moment(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, models.base.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "lead_models",
        sa.Column("id", _ID, nullable=False),
        _moment("created_at", nullable=False),
        sa.Column("outcomes", sa.Integer(), nullable=False),
        sa.Column("trained_on", sa.Integer(), nullable=False),
        sa.Column("tested_on", sa.Integer(), nullable=False),
        _moment("tested_from"),
        _moment("tested_until"),
        sa.Column("features", models.base.JSONType, nullable=False),
        sa.Column("intercept", sa.Float(), nullable=True),
        sa.Column("coefficients", models.base.JSONType, nullable=False),
        sa.Column("figures", models.base.JSONType, nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        _moment("activated_at"),
        _moment("retired_at"),
        sa.Column("retired_by", sa.Text(), nullable=True),
        sa.Column("rolled_back", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_models")),
    )
    op.create_index(
        "ux_lead_models_active",
        "lead_models",
        ["active"],
        unique=True,
        postgresql_where=sa.text("active"),
        sqlite_where=sa.text("active"),
    )
    op.add_column("routing_decisions", sa.Column("scored_by", sa.String(length=32), nullable=True))
    op.add_column("contacts", sa.Column("lead_scored_by", sa.String(length=32), nullable=True))


def downgrade() -> None:
    op.drop_column("contacts", "lead_scored_by")
    op.drop_column("routing_decisions", "scored_by")
    op.drop_index("ux_lead_models_active", table_name="lead_models")
    op.drop_table("lead_models")
