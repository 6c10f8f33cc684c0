"""what customers answered in WhatsApp Flows

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-06 00:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0011"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "flow_answers",
        sa.Column("id", _ID, nullable=False),
        sa.Column("contact_id", _ID, nullable=False),
        sa.Column("flow", sa.String(length=64), nullable=False),
        sa.Column("flow_token", sa.String(length=128), nullable=False),
        sa.Column("screen", sa.String(length=64), nullable=False),
        sa.Column("answers", models.base.JSONType, nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_flow_answers_contact_id_contacts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_answers")),
        sa.UniqueConstraint("flow_token", "screen", name=op.f("uq_flow_answers_flow_token_screen")),
    )
    op.create_index(op.f("ix_flow_answers_contact_id"), "flow_answers", ["contact_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_flow_answers_contact_id"), table_name="flow_answers")
    op.drop_table("flow_answers")
