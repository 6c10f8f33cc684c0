"""Who is calling: the credential of a request turned into a ``Principal`` (login, role, teams).

Credentials, in the order they are looked at:

- ``Authorization: Bearer <ADMIN_TOKEN>``: the admin role, login ``admin`` (bootstrap and
  service credential). A weak ADMIN_TOKEN (``domain.credentials.admin_token_problem``) is refused
  at start and treated as unset.
- ``Authorization: Bearer <token>``: a sign-in token (``POST /api/auth/token``) or a personal API
  token (``POST /api/tokens``), looked up by its sha256 in ``auth_tokens`` with its account in
  one indexed query; expired, revoked or of a deleted account: 401.
- the dashboard's session cookie (``POST /dashboard/login``), a row of the same table.

What a principal may do is decided by ``api/permissions.py`` alone.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy import Connection, func, select, update
from sqlalchemy.orm import Session

from domain.credentials import admin_token_problem
from models import Agent, AgentTeam, AuthToken
from models.accounts import SESSION
from models.base import utcnow
from models.db import get_engine, session_scope
from models.routing import ADMIN
from settings import Settings

log = logging.getLogger(__name__)

SESSION_COOKIE = "wacrm_session"
ADMIN_LOGIN = "admin"
# last_used_at is refreshed at most this often (not one write per request).
LAST_USED_EVERY = timedelta(minutes=5)
# Teams come back from the token lookup joined by this (a team name never contains it).
TEAM_SEPARATOR = "\x1f"


@dataclass(frozen=True)
class Principal:
    """The caller. ``teams`` is None for the admin role (every team)."""

    login: str
    role: str
    teams: frozenset[str] | None
    agent_id: int | None = None
    token_id: int | None = None  # the auth_tokens row it came from (None: ADMIN_TOKEN)
    csrf: str | None = None  # a browser session's CSRF token

    def sees_team(self, team: str) -> bool:
        return self.teams is None or team in self.teams


def new_secret() -> str:
    """A token's secret: 256 bits from the OS's CSPRNG."""
    return secrets.token_urlsafe(32)


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def usable_admin_token(config: Settings) -> str | None:
    """ADMIN_TOKEN, or None when it is unset or refused as weak."""
    token = config.admin_token
    if token and admin_token_problem(token):
        return None
    return token or None


def admin_token_state(config: Settings) -> str | None:
    """Why ADMIN_TOKEN does not open the API (unset, or the rule it breaks), or None."""
    if not config.admin_token:
        return "ADMIN_TOKEN is not set"
    return admin_token_problem(config.admin_token)


def check_admin_token(config: Settings) -> None:
    """At start: say loudly that a weak ADMIN_TOKEN is refused (the API treats it as unset)."""
    problem = config.admin_token and admin_token_problem(config.admin_token)
    if problem:
        log.error(
            "%s; it is treated as unset until it is replaced (e.g. python -c "
            "'import secrets; print(secrets.token_urlsafe(32))')",
            problem,
        )


def _bearer(request: Request) -> str | None:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return given.strip() or None if scheme.lower() == "bearer" else None


def resolve(request: Request) -> Principal | None:
    """The request's principal, None when it carries no credential; 401 for a bad one."""
    config: Settings = request.app.state.settings
    bearer = _bearer(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if bearer is None and not cookie:
        return None
    admin_token = usable_admin_token(config)
    if bearer is not None and admin_token and hmac.compare_digest(bearer.encode(), admin_token.encode()):
        return Principal(ADMIN_LOGIN, ADMIN, None)
    secret = bearer if bearer is not None else cookie
    assert secret is not None
    principal = _lookup_once(secret, session_only=bearer is None)
    if principal is None:
        raise HTTPException(
            401,
            "this token is unknown, expired or revoked: sign in again (POST /api/auth/token)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


def _lookup_once(secret: str, *, session_only: bool) -> Principal | None:
    """The lookup on its own connection. On PostgreSQL in autocommit: one statement, no
    BEGIN/COMMIT round trips (it reads one row; the rare last_used_at write stands alone)."""
    if config_is_sqlite():
        with session_scope() as session:
            return lookup(session, secret, session_only=session_only)
    with get_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        return lookup(connection, secret, session_only=session_only)


def config_is_sqlite() -> bool:
    return get_engine().dialect.name == "sqlite"


def lookup(session: Session | Connection, secret: str, *, session_only: bool = False) -> Principal | None:
    """The live token with this secret, its account and the account's teams, in one query (the
    hash is unique and indexed)."""
    now = utcnow()
    query = (
        select(
            AuthToken.id,
            AuthToken.kind,
            AuthToken.agent_id,
            AuthToken.login,
            AuthToken.csrf,
            AuthToken.last_used_at,
            Agent.login.label("agent_login"),
            Agent.role,
            Agent.active,
            func.aggregate_strings(AgentTeam.team, TEAM_SEPARATOR).label("teams"),
        )
        .outerjoin(Agent, Agent.id == AuthToken.agent_id)
        .outerjoin(AgentTeam, AgentTeam.agent_id == Agent.id)
        .where(
            AuthToken.token_hash == token_hash(secret),
            AuthToken.revoked_at.is_(None),
            (AuthToken.expires_at.is_(None)) | (AuthToken.expires_at > now),
        )
        .group_by(AuthToken.id, Agent.id)
    )
    row = session.execute(query).first()
    if row is None or session_only != (row.kind == SESSION):
        return None  # a cookie is a session, a bearer header never is
    if row.agent_id is None:
        if row.login != ADMIN_LOGIN:
            return None
        principal = Principal(ADMIN_LOGIN, ADMIN, None, None, row.id, row.csrf)
    else:
        if not row.active:
            return None
        teams = (
            None if row.role == ADMIN else frozenset(filter(None, (row.teams or "").split(TEAM_SEPARATOR)))
        )
        principal = Principal(row.agent_login, row.role, teams, row.agent_id, row.id, row.csrf)
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_EVERY:
        session.execute(update(AuthToken).where(AuthToken.id == row.id).values(last_used_at=now))
    return principal


def issue(
    session: Session,
    *,
    kind: str,
    login: str,
    agent_id: int | None,
    expires_at: datetime | None,
    name: str | None = None,
) -> tuple[str, AuthToken]:
    """A new token: its secret (shown once) and its row (which keeps only the hash)."""
    secret = new_secret()
    row = AuthToken(
        token_hash=token_hash(secret),
        kind=kind,
        login=login,
        agent_id=agent_id,
        name=name,
        expires_at=expires_at,
        csrf=secrets.token_urlsafe(24) if kind == "session" else None,
    )
    session.add(row)
    session.flush()
    return secret, row


def current(request: Request) -> Principal:
    """The principal ``api.permissions.enforce`` found (routes that need one only run then)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        raise HTTPException(401, "sign in first")
    return principal


Caller = Annotated[Principal, Depends(current)]


def actor(principal: Principal) -> str:
    """Who acted, for the audit log: the account's login (``admin`` for ADMIN_TOKEN)."""
    return principal.login


def is_admin(request: Request) -> bool:
    """Whether the request carries the usable ADMIN_TOKEN: for the answers that show operators
    more than anyone else, such as /readyz's error details."""
    token = usable_admin_token(request.app.state.settings)
    given = _bearer(request)
    return bool(token) and given is not None and hmac.compare_digest(given.encode(), token.encode())
