"""Who is looking at the page and in which language."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy import select

from api.auth import Principal
from models import Agent
from models.db import session_scope
from pipeline import audit
from web.i18n import LANGUAGES, language_or_default

LANGUAGE_COOKIE = "wacrm_lang"  # for a session without an account (ADMIN_TOKEN)


def language_of(request: Request, principal: Principal | None) -> str:
    """The account's language; a session without an account keeps its choice in a cookie."""
    if principal is not None and principal.agent_id is not None:
        with session_scope() as session:
            chosen = session.scalar(select(Agent.language).where(Agent.id == principal.agent_id))
        return language_or_default(chosen)
    return language_or_default(request.cookies.get(LANGUAGE_COOKIE))


def set_language(principal: Principal, language: str) -> bool:
    """Store the account's choice; False when the session has no account to store it on."""
    if language not in LANGUAGES or principal.agent_id is None:
        return False
    with session_scope() as session:
        agent = session.get(Agent, principal.agent_id)
        if agent is None:
            return False
        agent.language = language
        audit.record(
            session, principal.login, "account.language", f"agent:{agent.login}", {"language": language}
        )
    return True
