"""rich outbound messages: the outbox and broadcast body, Cloud media ids per file and channel, tracker views

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 19:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbound_messages") as batch:
        batch.add_column(sa.Column("body", models.base.JSONType, nullable=True))
        batch.add_column(sa.Column("media_file_id", sa.BigInteger(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_outbound_messages_media_file_id_media_files"), "media_files", ["media_file_id"], ["id"]
        )
    op.create_table(
        "cloud_media_uploads",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("media_file_id", sa.BigInteger(), nullable=False),
        sa.Column("channel_key", sa.String(length=32), nullable=False),
        sa.Column("cloud_media_id", sa.String(length=128), nullable=True),
        sa.Column("claimed_until", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("uploaded_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["media_file_id"],
            ["media_files.id"],
            name=op.f("fk_cloud_media_uploads_media_file_id_media_files"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cloud_media_uploads")),
        sa.UniqueConstraint(
            "media_file_id", "channel_key", name=op.f("uq_cloud_media_uploads_media_file_id_channel_key")
        ),
    )
    with op.batch_alter_table("broadcasts") as batch:
        batch.add_column(sa.Column("body", models.base.JSONType, nullable=True))
        batch.add_column(sa.Column("media_file_id", sa.BigInteger(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_broadcasts_media_file_id_media_files"), "media_files", ["media_file_id"], ["id"]
        )
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("tracker_views", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(
            sa.Column("tracker_viewed_at", models.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("tracker_viewed_at")
        batch.drop_column("tracker_views")
    with op.batch_alter_table("broadcasts") as batch:
        batch.drop_constraint(op.f("fk_broadcasts_media_file_id_media_files"), type_="foreignkey")
        batch.drop_column("media_file_id")
        batch.drop_column("body")
    op.drop_table("cloud_media_uploads")
    with op.batch_alter_table("outbound_messages") as batch:
        batch.drop_constraint(op.f("fk_outbound_messages_media_file_id_media_files"), type_="foreignkey")
        batch.drop_column("media_file_id")
        batch.drop_column("body")
