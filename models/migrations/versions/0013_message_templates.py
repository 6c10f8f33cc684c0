"""message templates synced from each WhatsApp Business Account

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-06 00:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "message_templates",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("waba_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("language", sa.String(length=15), nullable=False),
        sa.Column("remote_id", sa.String(length=64), nullable=True),
        sa.Column("category", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=True),
        sa.Column("components", models.base.JSONType, nullable=False),
        sa.Column("status_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("synced_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_templates")),
        sa.UniqueConstraint(
            "waba_id", "name", "language", name=op.f("uq_message_templates_waba_id_name_language")
        ),
    )
    op.create_index(op.f("ix_message_templates_remote_id"), "message_templates", ["remote_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_message_templates_remote_id"), table_name="message_templates")
    op.drop_table("message_templates")
