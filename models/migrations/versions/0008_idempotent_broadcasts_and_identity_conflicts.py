"""broadcasts keep the client's Idempotency-Key; order events record identity conflicts

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("broadcasts") as batch:
        batch.add_column(sa.Column("idempotency_key", sa.String(length=255), nullable=True))
        batch.create_unique_constraint(batch.f("uq_broadcasts_idempotency_key"), ["idempotency_key"])
    op.create_table(
        "identity_conflicts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("other_contact_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("phone", sa.String(length=20), nullable=True),
        sa.Column("other_phone", sa.String(length=20), nullable=True),
        sa.Column("first_seen_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name=op.f("fk_identity_conflicts_contact_id_contacts")
        ),
        sa.ForeignKeyConstraint(
            ["other_contact_id"],
            ["contacts.id"],
            name=op.f("fk_identity_conflicts_other_contact_id_contacts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_conflicts")),
    )
    op.create_index(op.f("ix_identity_conflicts_contact_id"), "identity_conflicts", ["contact_id"])
    op.create_index(
        op.f("ix_identity_conflicts_other_contact_id"), "identity_conflicts", ["other_contact_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_identity_conflicts_other_contact_id"), table_name="identity_conflicts")
    op.drop_index(op.f("ix_identity_conflicts_contact_id"), table_name="identity_conflicts")
    op.drop_table("identity_conflicts")
    with op.batch_alter_table("broadcasts") as batch:
        batch.drop_constraint(batch.f("uq_broadcasts_idempotency_key"), type_="unique")
        batch.drop_column("idempotency_key")
