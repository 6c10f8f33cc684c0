"""Accounts and signing in: agents (who they are, their role, teams and availability), bearer
tokens for the API, and personal API tokens for scripts. See docs/accounts.md."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from api.auth import Caller, issue
from models import Agent, AuthToken
from models.accounts import PERSONAL, SIGN_IN
from models.base import utcnow
from models.db import session_scope
from models.routing import ADMIN, ROLES
from pipeline import accounts, audit
from settings import settings

router = APIRouter(prefix="/api", tags=["accounts"])

LOGIN_PATTERN = r"^[A-Za-z0-9._@-]{1,64}$"
Login = Annotated[str, Path(pattern=LOGIN_PATTERN)]
Role = Literal["admin", "supervisor", "agent"]
WRONG_PAIR = "wrong login or password"


class AgentIn(BaseModel):
    """Change an agent; fields left out keep their value (a new agent: the defaults)."""

    name: str | None = Field(default=None, max_length=255)
    teams: list[str] | None = Field(default=None, max_length=50)
    team: str | None = Field(default=None, max_length=64, description="one team (older clients)")
    available: bool = True
    role: Role | None = None
    active: bool | None = None
    password: str | None = Field(default=None, max_length=1024, description="a new password (admin)")


class AgentCreate(BaseModel):
    login: str = Field(pattern=LOGIN_PATTERN)
    name: str | None = Field(default=None, max_length=255)
    role: Role = "agent"
    teams: list[str] = Field(default_factory=lambda: [settings.default_team], max_length=50)
    password: str | None = Field(default=None, max_length=1024)


class AgentOut(BaseModel):
    login: str
    name: str | None
    role: str
    teams: list[str]
    team: str | None  # the first of ``teams`` (older clients)
    available: bool
    active: bool
    last_assigned_at: datetime | None


class TokenRequest(BaseModel):
    login: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class TokenOut(BaseModel):
    token: str
    expires_at: datetime | None


class PersonalTokenIn(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650, description="none: until revoked")


class PersonalTokenOut(BaseModel):
    id: int
    name: str | None
    login: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class PersonalTokenCreated(PersonalTokenOut):
    token: str  # shown this once; only its hash is kept


def agent_out(agent: Agent) -> AgentOut:
    teams = agent.teams
    return AgentOut(
        login=agent.login,
        name=agent.name,
        role=agent.role,
        teams=teams,
        team=teams[0] if teams else None,
        available=agent.available,
        active=agent.active,
        last_assigned_at=agent.last_assigned_at,
    )


def _raise(error: accounts.AccountError) -> HTTPException:
    return HTTPException(error.status, str(error))


@router.get("/agents", response_model=list[AgentOut])
def list_agents() -> list[AgentOut]:
    with session_scope() as session:
        return [agent_out(a) for a in session.scalars(select(Agent).order_by(Agent.login))]


@router.post("/agents", response_model=AgentOut, status_code=201)
def create_agent(body: AgentCreate, caller: Caller) -> AgentOut:
    """A new account, with the role and teams given; ``password`` must pass the password rules
    (422 names the rule), a taken login is 409."""
    try:
        with session_scope() as session:
            agent = accounts.create_agent(session, actor=caller.login, **body.model_dump())
            return agent_out(agent)
    except accounts.AccountError as exc:
        raise _raise(exc) from exc


@router.put("/agents/{login}", response_model=AgentOut)
def put_agent(login: Login, body: AgentIn, caller: Caller) -> AgentOut:
    """Add an agent or change one (admin); an agent or supervisor changes only their own
    availability (``available``), anything else is 403."""
    given = body.model_fields_set
    if caller.role != ADMIN and (login != caller.login or given - {"available"}):
        raise HTTPException(403, f"{caller.login} ({caller.role}) may change only their own availability")
    with session_scope() as session:
        agent = session.scalar(select(Agent).where(Agent.login == login).with_for_update())
        if agent is None:
            agent = Agent(login=login)
            session.add(agent)
            given = given | {"available"}
            if "teams" not in given and "team" not in given:
                body.teams, given = [settings.default_team], given | {"teams"}
        if "teams" in given or "team" in given:
            try:
                accounts.set_teams(agent, body.teams if body.teams is not None else [body.team or ""])
            except accounts.AccountError as exc:
                raise _raise(exc) from exc
        if "password" in given:
            try:
                agent.password_hash = accounts.hash_password(accounts.validate_password(body.password, login))
            except accounts.AccountError as exc:
                raise _raise(exc) from exc
        for field in ("name", "available", "role", "active"):
            if field in given and getattr(body, field) is not None:
                setattr(agent, field, getattr(body, field))
        if agent.role not in ROLES:
            agent.role = "agent"
        agent.updated_at = utcnow()
        session.flush()
        if agent.active is False and agent.id:
            accounts.revoke_all(session, agent.id)
        audit.record(session, caller.login, "agent.saved", f"agent:{login}", body.model_dump(include=given))
        return agent_out(agent)


@router.delete("/agents/{login}", status_code=204)
def delete_agent(login: Login, caller: Caller) -> Response:
    """Delete an account; the conversations they owned go back to their team's queue."""
    if login == caller.login:
        raise HTTPException(422, "login: you cannot delete your own account")
    try:
        with session_scope() as session:
            accounts.delete_agent(session, login, caller.login)
    except accounts.AccountError as exc:
        raise _raise(exc) from exc
    return Response(status_code=204)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def throttled(retry_after: int) -> HTTPException:
    return HTTPException(
        429,
        f"too many failed sign-ins: try again in {retry_after} s",
        headers={"Retry-After": str(retry_after)},
    )


@router.post("/auth/token", response_model=TokenOut)
def sign_in(body: TokenRequest, request: Request) -> TokenOut:
    """A bearer token for ``/api/*`` with this account's role, valid ``SESSION_HOURS``."""
    with session_scope() as session:
        result = accounts.sign_in(session, body.login, body.password, client_address(request))
        token = None
        if result.agent is not None:
            expires = utcnow() + timedelta(hours=settings.session_hours)
            secret, _ = issue(
                session, kind=SIGN_IN, login=result.agent.login, agent_id=result.agent.id, expires_at=expires
            )
            token = TokenOut(token=secret, expires_at=expires)
    if result.retry_after is not None:
        raise throttled(result.retry_after)
    if token is None:
        raise HTTPException(401, WRONG_PAIR, headers={"WWW-Authenticate": "Bearer"})
    return token


def _token_out(row: AuthToken) -> PersonalTokenOut:
    return PersonalTokenOut.model_validate(row, from_attributes=True)


@router.post("/tokens", response_model=PersonalTokenCreated, status_code=201)
def create_token(body: PersonalTokenIn, caller: Caller) -> PersonalTokenCreated:
    """A personal API token for scripts, with the caller's role: the secret is shown once."""
    expires = utcnow() + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    with session_scope() as session:
        secret, row = issue(
            session,
            kind=PERSONAL,
            login=caller.login,
            agent_id=caller.agent_id,
            expires_at=expires,
            name=body.name,
        )
        audit.record(session, caller.login, "token.created", f"token:{row.id}", {"name": body.name})
        return PersonalTokenCreated(**_token_out(row).model_dump(), token=secret)


@router.get("/tokens", response_model=list[PersonalTokenOut])
def list_tokens(caller: Caller) -> list[PersonalTokenOut]:
    """The caller's personal tokens (an admin sees everyone's), without their secrets."""
    query = select(AuthToken).where(AuthToken.kind == PERSONAL).order_by(AuthToken.id)
    if caller.role != ADMIN:
        query = query.where(AuthToken.login == caller.login)
    with session_scope() as session:
        return [_token_out(row) for row in session.scalars(query)]


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: int, caller: Caller) -> Response:
    """Revoke a personal token (one's own; an admin any): it answers 401 from now on."""
    with session_scope() as session:
        row = session.get(AuthToken, token_id, with_for_update=True)
        if row is None or row.kind != PERSONAL or (caller.role != ADMIN and row.login != caller.login):
            raise HTTPException(404, f"no token {token_id}")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            audit.record(session, caller.login, "token.revoked", f"token:{row.id}", {"name": row.name})
    return Response(status_code=204)
