"""accounts: agents get a role, a password hash and an active flag, teams through agent_teams;
bearer tokens and browser sessions; failed sign-ins

Revision ID: 0010
Revises: 0008
Create Date: 2026-12-06 00:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0010"
# Re-chained after the channels branch's 0009 when the two are merged.
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = models.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "agent_teams",
        sa.Column("agent_id", BigId, nullable=False),
        sa.Column("team", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_agent_teams_agent_id_agents"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("agent_id", "team", name=op.f("pk_agent_teams")),
    )
    op.create_index(op.f("ix_agent_teams_team"), "agent_teams", ["team"])
    # Every agent's one team becomes their first membership.
    op.execute("INSERT INTO agent_teams (agent_id, team) SELECT id, team FROM agents")
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("role", sa.String(length=16), nullable=False, server_default="agent"))
        batch.add_column(sa.Column("password_hash", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()))
        batch.drop_index("ix_agents_team")
        batch.drop_column("team")
    op.create_table(
        "auth_tokens",
        sa.Column("id", BigId, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("agent_id", BigId, nullable=True),
        sa.Column("login", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=True),
        sa.Column("csrf", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("expires_at", UTC, nullable=True),
        sa.Column("revoked_at", UTC, nullable=True),
        sa.Column("last_used_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["agents.id"], name=op.f("fk_auth_tokens_agent_id_agents"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_auth_tokens_token_hash")),
    )
    op.create_index(op.f("ix_auth_tokens_agent_id"), "auth_tokens", ["agent_id"])
    op.create_table(
        "sign_in_failures",
        sa.Column("id", BigId, nullable=False),
        sa.Column("login", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sign_in_failures")),
    )
    op.create_index("ix_sign_in_failures_login_created", "sign_in_failures", ["login", "created_at"])
    op.create_index("ix_sign_in_failures_address_created", "sign_in_failures", ["address", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_sign_in_failures_address_created", table_name="sign_in_failures")
    op.drop_index("ix_sign_in_failures_login_created", table_name="sign_in_failures")
    op.drop_table("sign_in_failures")
    op.drop_index(op.f("ix_auth_tokens_agent_id"), table_name="auth_tokens")
    op.drop_table("auth_tokens")
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("team", sa.String(length=64), nullable=False, server_default="sales"))
    # Back to one team per agent: the first of their teams.
    op.execute(
        "UPDATE agents SET team = (SELECT MIN(team) FROM agent_teams WHERE agent_teams.agent_id = agents.id) "
        "WHERE EXISTS (SELECT 1 FROM agent_teams WHERE agent_teams.agent_id = agents.id)"
    )
    with op.batch_alter_table("agents") as batch:
        batch.alter_column("team", server_default=None)
        batch.create_index("ix_agents_team", ["team"])
        batch.drop_column("active")
        batch.drop_column("password_hash")
        batch.drop_column("role")
    op.drop_index(op.f("ix_agent_teams_team"), table_name="agent_teams")
    op.drop_table("agent_teams")
