"""the labels page's daily roll-up: distinct contacts per label, local day and action; the
staff figures' covering indexes of labels given

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-07 14:40:00
"""

from collections.abc import Sequence
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

import models.base
from settings import settings

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "label_flow_contacts",
        sa.Column("label_id", _ID, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("contact_id", _ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_label_flow_contacts_contact_id_contacts")
        ),
        sa.ForeignKeyConstraint(
            ["label_id"], ["labels.id"], name=op.f("fk_label_flow_contacts_label_id_labels")
        ),
        sa.PrimaryKeyConstraint(
            "label_id", "day", "action", "contact_id", name=op.f("pk_label_flow_contacts")
        ),
    )
    op.create_index("ix_label_flow_contacts_contact", "label_flow_contacts", ["contact_id"], unique=False)
    op.create_table(
        "label_flow_days",
        sa.Column("label_id", _ID, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("contacts", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["label_id"], ["labels.id"], name=op.f("fk_label_flow_days_label_id_labels")),
        sa.PrimaryKeyConstraint("label_id", "day", "action", name=op.f("pk_label_flow_days")),
    )
    op.create_index("ix_label_flow_days_day", "label_flow_days", ["day"], unique=False)
    _backfill()
    added = sa.text("action = 'added'")
    op.create_index(
        "ix_label_changes_added_time",
        "label_changes",
        ["occurred_at"],
        unique=False,
        postgresql_include=["staff", "contact_id"],
        postgresql_where=added,
        sqlite_where=added,
    )
    op.create_index(
        "ix_label_changes_added_label",
        "label_changes",
        ["label_id", "contact_id"],
        unique=False,
        postgresql_where=added,
        sqlite_where=added,
    )


def _backfill() -> None:
    """The roll-up of every change so far, in the local days of TIMEZONE (as pipeline.label_flow
    keeps it from now on)."""
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.execute(
            sa.text(
                """
                INSERT INTO label_flow_contacts (label_id, day, action, contact_id)
                SELECT DISTINCT label_id, CAST(timezone(:zone, occurred_at) AS date), action, contact_id
                FROM label_changes
                """
            ),
            {"zone": settings.timezone},
        )
    else:  # SQLite has no time zones: the local day is found here
        zone = ZoneInfo(settings.timezone)
        changes = sa.table(
            "label_changes",
            sa.column("label_id"),
            sa.column("occurred_at", models.base.UTCDateTime(timezone=True)),
            sa.column("action"),
            sa.column("contact_id"),
        )
        keys = {
            (row.label_id, row.occurred_at.astimezone(zone).date(), row.action, row.contact_id)
            for row in bind.execute(sa.select(changes))
        }
        rows = sa.table(
            "label_flow_contacts", *(sa.column(c) for c in ("label_id", "day", "action", "contact_id"))
        )
        if keys:
            bind.execute(
                rows.insert(),
                [dict(zip(("label_id", "day", "action", "contact_id"), k, strict=True)) for k in keys],
            )
    bind.execute(
        sa.text(
            """
            INSERT INTO label_flow_days (label_id, day, action, contacts)
            SELECT label_id, day, action, count(*) FROM label_flow_contacts GROUP BY label_id, day, action
            """
        )
    )


def downgrade() -> None:
    op.drop_index("ix_label_changes_added_label", table_name="label_changes")
    op.drop_index("ix_label_changes_added_time", table_name="label_changes")
    op.drop_index("ix_label_flow_days_day", table_name="label_flow_days")
    op.drop_table("label_flow_days")
    op.drop_index("ix_label_flow_contacts_contact", table_name="label_flow_contacts")
    op.drop_table("label_flow_contacts")
