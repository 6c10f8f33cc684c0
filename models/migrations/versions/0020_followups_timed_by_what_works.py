"""follow-ups timed by what works: a customer's writing hours, each follow-up's effect

Revision ID: 0020
Revises: 0017
Create Date: 2026-12-06 19:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0020"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _moment(name: str) -> sa.Column:
    return sa.Column(name, models.base.UTCDateTime(timezone=True), nullable=True)


def upgrade() -> None:
    op.add_column("contacts", sa.Column("answer_hours", models.base.JSONType, nullable=True))
    op.add_column("adaptive_followups", sa.Column("rules_scope", sa.String(length=32), nullable=True))
    op.add_column("adaptive_followups", _moment("answered_at"))
    op.add_column("adaptive_followups", _moment("ordered_at"))
    op.add_column("delivery_followups", _moment("answered_at"))


def downgrade() -> None:
    op.drop_column("delivery_followups", "answered_at")
    op.drop_column("adaptive_followups", "ordered_at")
    op.drop_column("adaptive_followups", "answered_at")
    op.drop_column("adaptive_followups", "rules_scope")
    op.drop_column("contacts", "answer_hours")
