"""the team inbox: an account's page language, private conversation notes, the queue's indexes

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 19:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("agents", sa.Column("language", sa.String(length=8), nullable=True))
    op.create_table(
        "conversation_notes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("mentions", models.base.JSONType, nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_conversation_notes_conversation_id_conversations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_notes")),
    )
    op.create_index(
        op.f("ix_conversation_notes_conversation_id"), "conversation_notes", ["conversation_id"], unique=False
    )
    op.create_index(
        "ix_conversations_open_last",
        "conversations",
        ["last_message_at", "id"],
        unique=False,
        postgresql_where=sa.text("closed_at IS NULL"),
        sqlite_where=sa.text("closed_at IS NULL"),
    )
    op.create_index("ix_conversations_closed_at", "conversations", ["closed_at", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_conversations_closed_at", table_name="conversations")
    op.drop_index("ix_conversations_open_last", table_name="conversations")
    op.drop_index(op.f("ix_conversation_notes_conversation_id"), table_name="conversation_notes")
    op.drop_table("conversation_notes")
    op.drop_column("agents", "language")
