"""channels: several WhatsApp numbers; conversations, outbox rows and orders carry their channel

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 00:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "channels",
        sa.Column("id", _ID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("display_phone", sa.String(length=32), nullable=True),
        sa.Column("team", sa.String(length=64), nullable=True),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("phone_number_id", sa.String(length=64), nullable=True),
        sa.Column("waba_id", sa.String(length=64), nullable=True),
        sa.Column("access_token_secret", sa.Text(), nullable=True),
        sa.Column("app_secret_secret", sa.Text(), nullable=True),
        sa.Column("waha_url", sa.String(length=1000), nullable=True),
        sa.Column("session", sa.String(length=128), nullable=True),
        sa.Column("api_key_secret", sa.Text(), nullable=True),
        sa.Column("hmac_key_secret", sa.Text(), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channels")),
        sa.UniqueConstraint("name", name=op.f("uq_channels_name")),
        sa.UniqueConstraint("phone_number_id", name=op.f("uq_channels_phone_number_id")),
        sa.UniqueConstraint("session", name=op.f("uq_channels_session")),
    )
    op.create_index(
        "uq_channels_one_default",
        "channels",
        ["is_default"],
        unique=True,
        postgresql_where=sa.text("is_default"),
        sqlite_where=sa.text("is_default"),
    )
    for table in ("conversations", "outbound_messages", "orders"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("channel_id", _ID, nullable=True))
            batch.create_foreign_key(
                batch.f(f"fk_{table}_channel_id_channels"), "channels", ["channel_id"], ["id"]
            )
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("assigned_agent", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("assigned_agent")
    for table in ("orders", "outbound_messages", "conversations"):
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(batch.f(f"fk_{table}_channel_id_channels"), type_="foreignkey")
            batch.drop_column("channel_id")
    op.drop_index("uq_channels_one_default", table_name="channels")
    op.drop_table("channels")
