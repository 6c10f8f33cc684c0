"""who sent each message, reactions and edits, the agent on a channel's phone

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 19:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("sender_type", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("sender_agent", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("reactions", models.base.JSONType, nullable=True))
        batch.add_column(sa.Column("edits", models.base.JSONType, nullable=True))
        batch.add_column(sa.Column("edited_at", models.base.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table("outbound_messages") as batch:
        batch.add_column(sa.Column("sender_agent", sa.String(length=64), nullable=True))
    with op.batch_alter_table("channels") as batch:
        batch.add_column(sa.Column("phone_agent", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("channels") as batch:
        batch.drop_column("phone_agent")
    with op.batch_alter_table("outbound_messages") as batch:
        batch.drop_column("sender_agent")
    with op.batch_alter_table("messages") as batch:
        for column in ("edited_at", "edits", "reactions", "sender_agent", "sender_type"):
            batch.drop_column(column)
