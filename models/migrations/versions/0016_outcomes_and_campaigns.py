"""outcomes and campaigns: conversation outcomes, tracked links and clicks, touches, order
attribution, the Conversions API outbox

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 19:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = models.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tracked_links",
        sa.Column("id", _ID, nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("utm_source", sa.String(length=128), nullable=False),
        sa.Column("utm_medium", sa.String(length=128), nullable=False),
        sa.Column("utm_campaign", sa.String(length=128), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracked_links")),
        sa.UniqueConstraint("code", name=op.f("uq_tracked_links_code")),
    )
    op.create_table(
        "link_clicks",
        sa.Column("id", _ID, nullable=False),
        sa.Column("link_id", _ID, nullable=False),
        sa.Column("clicked_at", _TIME, nullable=False),
        sa.Column("conversation_id", _ID, nullable=True),
        sa.ForeignKeyConstraint(
            ["link_id"], ["tracked_links.id"], name=op.f("fk_link_clicks_link_id_tracked_links")
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_link_clicks_conversation_id_conversations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_link_clicks")),
    )
    op.create_index("ix_link_clicks_link_time", "link_clicks", ["link_id", "clicked_at"], unique=False)
    op.create_table(
        "touches",
        sa.Column("id", _ID, nullable=False),
        sa.Column("contact_id", _ID, nullable=False),
        sa.Column("conversation_id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("campaign", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("utm_source", sa.String(length=128), nullable=True),
        sa.Column("utm_medium", sa.String(length=128), nullable=True),
        sa.Column("ctwa_clid", sa.String(length=255), nullable=True),
        sa.Column("occurred_at", _TIME, nullable=False),
        sa.Column("created_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name=op.f("fk_touches_contact_id_contacts")),
        sa.ForeignKeyConstraint(
            ["conversation_id"], ["conversations.id"], name=op.f("fk_touches_conversation_id_conversations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_touches")),
        sa.UniqueConstraint("conversation_id", "campaign", name=op.f("uq_touches_conversation_id_campaign")),
    )
    op.create_index(op.f("ix_touches_contact_id"), "touches", ["contact_id"], unique=False)
    op.create_table(
        "conversion_events",
        sa.Column("id", _ID, nullable=False),
        sa.Column("event_id", sa.String(length=191), nullable=False),
        sa.Column("event_name", sa.String(length=32), nullable=False),
        sa.Column("conversation_id", _ID, nullable=False),
        sa.Column("order_id", _ID, nullable=True),
        sa.Column("payload", models.base.JSONType, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _TIME, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", _TIME, nullable=True),
        sa.Column("created_at", _TIME, nullable=False),
        sa.Column("updated_at", _TIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_conversion_events_conversation_id_conversations"),
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_conversion_events_order_id_orders")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversion_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_conversion_events_event_id")),
    )
    op.create_index(
        op.f("ix_conversion_events_conversation_id"), "conversion_events", ["conversation_id"], unique=False
    )
    op.create_index(
        "ix_conversion_events_due",
        "conversion_events",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("state = 'queued'"),
        sqlite_where=sa.text("state = 'queued'"),
    )
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("outcome", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("outcome_at", _TIME, nullable=True))
        batch.add_column(sa.Column("campaign", sa.String(length=255), nullable=True))
    op.create_index(
        "ix_conversations_open_inbound",
        "conversations",
        ["last_inbound_at"],
        unique=False,
        postgresql_where=sa.text("outcome IS NULL"),
        sqlite_where=sa.text("outcome IS NULL"),
    )
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("attributed_at", _TIME, nullable=True))
        batch.add_column(sa.Column("conversation_id", _ID, nullable=True))
        batch.add_column(sa.Column("first_campaign", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("last_campaign", sa.String(length=255), nullable=True))
        batch.create_foreign_key(
            batch.f("fk_orders_conversation_id_conversations"), "conversations", ["conversation_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_constraint(batch.f("fk_orders_conversation_id_conversations"), type_="foreignkey")
        for column in ("last_campaign", "first_campaign", "conversation_id", "attributed_at"):
            batch.drop_column(column)
    op.drop_index("ix_conversations_open_inbound", table_name="conversations")
    with op.batch_alter_table("conversations") as batch:
        for column in ("campaign", "outcome_at", "outcome"):
            batch.drop_column(column)
    op.drop_index("ix_conversion_events_due", table_name="conversion_events")
    op.drop_index(op.f("ix_conversion_events_conversation_id"), table_name="conversion_events")
    op.drop_table("conversion_events")
    op.drop_index(op.f("ix_touches_contact_id"), table_name="touches")
    op.drop_table("touches")
    op.drop_index("ix_link_clicks_link_time", table_name="link_clicks")
    op.drop_table("link_clicks")
    op.drop_table("tracked_links")
