"""the outbox marks the moment a send's request could have left

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 22:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Rows already sending when this runs had no marker: NULL, so the sweeper gives them back to
    # the queue as never dispatched, as it does every claim that did not reach the request.
    with op.batch_alter_table("outbound_messages") as batch:
        batch.add_column(sa.Column("dispatched_at", models.base.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbound_messages") as batch:
        batch.drop_column("dispatched_at")
