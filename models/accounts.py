"""Signing in: bearer tokens and browser sessions (stored as hashes only), and failed sign-ins
counted for throttling."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow
from models.types import BigId

# What a token is: a browser session (the dashboard's cookie), a sign-in bearer token
# (POST /api/auth/token), or a personal API token for scripts (POST /api/tokens).
SESSION, SIGN_IN, PERSONAL = "session", "sign_in", "personal"


class AuthToken(Base):
    """One credential handed out to an account. Only the sha256 of the secret is stored; the
    secret has 256 bits of entropy, so a plain hash is enough (no salt, no slow hash) and one
    indexed lookup finds it."""

    __tablename__ = "auth_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    # The account; None for a browser session opened with ADMIN_TOKEN (login "admin").
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    login: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(100))  # a personal token's label
    # A session's CSRF token (sent back in every state-changing form).
    csrf: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class SignInFailure(Base):
    """A wrong password (or an unknown login): counted per login and per client address."""

    __tablename__ = "sign_in_failures"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    login: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_sign_in_failures_login_created", "login", "created_at"),
        Index("ix_sign_in_failures_address_created", "address", "created_at"),
    )
