"""broadcasts keep the client's Idempotency-Key; order events record identity conflicts

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-04 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("broadcasts") as batch:
        batch.add_column(sa.Column("idempotency_key", sa.String(length=255), nullable=True))
        batch.create_unique_constraint(batch.f("uq_broadcasts_idempotency_key"), ["idempotency_key"])


def downgrade() -> None:
    with op.batch_alter_table("broadcasts") as batch:
        batch.drop_constraint(batch.f("uq_broadcasts_idempotency_key"), type_="unique")
        batch.drop_column("idempotency_key")
