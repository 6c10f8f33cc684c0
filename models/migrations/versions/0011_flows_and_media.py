"""what customers answered in WhatsApp Flows; media files, inbound and uploaded

Revision ID: 0011
Revises: 0008
Create Date: 2026-12-06 00:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0011"
down_revision: str | None = "0010"
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
    op.create_table(
        "media_files",
        sa.Column("id", _ID, nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("message_id", _ID, nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("remote_ref", sa.String(length=2000), nullable=True),
        sa.Column("mime_type", sa.String(length=128), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_until", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("error", models.base.JSONType, nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("stored_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_media_files_message_id_messages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_media_files")),
        sa.UniqueConstraint("key", name=op.f("uq_media_files_key")),
        sa.UniqueConstraint("message_id", name=op.f("uq_media_files_message_id")),
    )


def downgrade() -> None:
    op.drop_table("media_files")
    op.drop_index(op.f("ix_flow_answers_contact_id"), table_name="flow_answers")
    op.drop_table("flow_answers")
