"""Accounts: creating and deleting them, checking a sign-in, and slowing down guessing.

Passwords are hashed with argon2id (argon2-cffi's defaults). A sign-in with an unknown login
costs the same hash check as a wrong password, and both answer the same, so the answer does not
tell which logins exist. Failed sign-ins are rows of ``sign_in_failures``: after
``MAX_FAILURES_PER_LOGIN`` for one login, or ``MAX_FAILURES_PER_ADDRESS`` from one client
address, within ``FAILURE_WINDOW``, further attempts are refused (429 with Retry-After) until the
oldest failure leaves the window. Every failure is logged (login and address, never the
password). Nothing here commits: the caller owns the transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from domain.credentials import password_problem
from models import Agent, AgentTeam, AuthToken, Contact, Conversation, RoutingDecision, SignInFailure
from models.base import utcnow
from models.routing import ROLES
from pipeline import audit, locks

log = logging.getLogger(__name__)

MAX_FAILURES_PER_LOGIN = 5
MAX_FAILURES_PER_ADDRESS = 20
FAILURE_WINDOW = timedelta(minutes=15)

_hasher = PasswordHasher()


class AccountError(Exception):
    """A request about an account that cannot be done: ``status`` is the HTTP answer it means."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class SignIn:
    agent: Agent | None  # None: a wrong pair (or throttled)
    retry_after: int | None = None  # seconds; set when the attempt was refused unchecked


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@cache
def _dummy_hash() -> str:
    return _hasher.hash("a password nobody has, to spend the same time")


def check_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _dummy_hash(), password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def validate_password(password: str | None, login: str) -> str:
    problem = password_problem(password, login)
    if problem:
        raise AccountError(422, problem)
    assert password is not None
    return password


def clean_teams(teams: list[str]) -> list[str]:
    cleaned = sorted({t.strip() for t in teams if t and t.strip()})
    if any(len(t) > 64 or not t.isprintable() for t in cleaned):
        raise AccountError(422, "teams: a team name has at most 64 printable characters")
    return cleaned


def set_teams(agent: Agent, teams: list[str]) -> None:
    wanted = clean_teams(teams)
    agent.memberships[:] = [m for m in agent.memberships if m.team in wanted]
    have = {m.team for m in agent.memberships}
    agent.memberships.extend(AgentTeam(team=t) for t in wanted if t not in have)


def create_agent(
    session: Session,
    *,
    login: str,
    name: str | None,
    role: str,
    teams: list[str],
    password: str | None,
    actor: str,
) -> Agent:
    """A new account; 409 when the login is taken, 422 for a weak password or an unknown role."""
    if role not in ROLES:
        raise AccountError(422, f"role: one of {', '.join(ROLES)}")
    validate_password(password, login)
    assert password is not None
    if session.scalar(select(Agent.id).where(Agent.login == login)) is not None:
        raise AccountError(409, f"login: an agent {login!r} exists already")
    agent = Agent(login=login, name=name, role=role, password_hash=hash_password(password))
    set_teams(agent, teams)
    session.add(agent)
    session.flush()
    audit.record(
        session, actor, "agent.created", f"agent:{login}", {"role": role, "teams": agent.teams, "name": name}
    )
    return agent


def delete_agent(session: Session, login: str, actor: str) -> dict[str, list[int]]:
    """Remove an account. What they owned goes back to the team queue: conversations lose their
    owner, contacts their assigned agent, open routing decisions their agent. Audited."""
    agent = session.scalar(select(Agent).where(Agent.login == login).with_for_update())
    if agent is None:
        raise AccountError(404, f"no agent {login!r}")
    contact_ids = set(session.scalars(select(Contact.id).where(Contact.assigned_agent == login)))
    contact_ids |= set(
        session.scalars(select(Conversation.contact_id).where(Conversation.owner_agent == login))
    )
    released: list[int] = []
    for contact_id in sorted(contact_ids):  # the contact first, as everywhere, in id order
        contact = locks.contact(session, contact_id)
        if contact is None:
            continue
        if contact.assigned_agent == login:
            contact.assigned_agent = None
        released += session.scalars(
            update(Conversation)
            .where(Conversation.contact_id == contact.id, Conversation.owner_agent == login)
            .values(owner_agent=None)
            .returning(Conversation.id)
        ).all()
        session.execute(
            update(RoutingDecision)
            .where(RoutingDecision.contact_id == contact.id, RoutingDecision.agent == login)
            .values(agent=None)
        )
    session.delete(agent)  # its teams and tokens go with it
    session.flush()
    details = {"released_conversations": sorted(released), "released_contacts": sorted(contact_ids)}
    audit.record(session, actor, "agent.deleted", f"agent:{login}", details)
    return details


def throttle_wait(session: Session, login: str, address: str) -> int | None:
    """Seconds to wait before this login (or this address) may try again, or None."""
    now = utcnow()
    since = now - FAILURE_WINDOW
    for column, value, limit in (
        (SignInFailure.login, login[:64], MAX_FAILURES_PER_LOGIN),
        (SignInFailure.address, address[:64], MAX_FAILURES_PER_ADDRESS),
    ):
        count, oldest = session.execute(
            select(func.count(), func.min(SignInFailure.created_at)).where(
                column == value, SignInFailure.created_at > since
            )
        ).one()
        if count >= limit:
            wait = max(1, int((oldest + FAILURE_WINDOW - now).total_seconds()) + 1)
            log.warning(
                "sign-in refused: too many failures",
                extra={"login": login[:64], "address": address[:64], "failures": count, "retry_after": wait},
            )
            return wait
    return None


def record_failure(session: Session, login: str, address: str) -> None:
    """A wrong pair (or a wrong ADMIN_TOKEN): counted, and logged without the secret."""
    now = utcnow()
    login, address = login[:64], address[:64]
    session.add(SignInFailure(login=login, address=address, created_at=now))
    session.execute(
        delete(SignInFailure).where(
            or_(SignInFailure.login == login, SignInFailure.address == address),
            SignInFailure.created_at < now - FAILURE_WINDOW,
        )
    )
    log.warning("sign-in failed: wrong credentials", extra={"login": login, "address": address})


def sign_in(session: Session, login: str, password: str, address: str) -> SignIn:
    """Check a login and password (throttled). The caller commits either way: a failure is
    recorded for the throttle."""
    login, address = login[:64], (address or "unknown")[:64]
    wait = throttle_wait(session, login, address)
    if wait is not None:
        return SignIn(None, wait)
    agent = session.scalar(select(Agent).where(Agent.login == login))
    ok = check_password(agent.password_hash if agent else None, password)
    if agent is not None and ok and agent.active:
        session.execute(delete(SignInFailure).where(SignInFailure.login == login))
        log.info("signed in", extra={"login": login, "address": address})
        return SignIn(agent)
    record_failure(session, login, address)
    return SignIn(None)


def revoke_all(session: Session, agent_id: int) -> None:
    session.execute(
        update(AuthToken)
        .where(AuthToken.agent_id == agent_id, AuthToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
