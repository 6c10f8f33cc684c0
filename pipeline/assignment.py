"""Assignment: which sales agent answers a contact.

Sticky first: a contact keeps the agent who already owns them while that agent is available.
Otherwise round robin within the team: the available agent assigned longest ago is next. The
pick locks that agent's row with SKIP LOCKED, so two workers assigning at the same moment take
two different agents instead of both taking the same one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Agent, AgentTeam, Contact
from models.base import utcnow


@dataclass(frozen=True)
class Assignment:
    agent: str | None
    reason: str


def assign(session: Session, contact: Contact, team: str) -> Assignment:
    """The agent for ``contact`` (now its ``assigned_agent``), or None when nobody is available."""
    skipped = ""
    if contact.assigned_agent:
        owner = session.scalar(select(Agent).where(Agent.login == contact.assigned_agent))
        if owner is not None and owner.available:
            return Assignment(owner.login, f"stays with {owner.login}, who already looks after this contact")
        skipped = f"{contact.assigned_agent} is unavailable; "
    agent = _next_in_rotation(session, team)
    if agent is None:
        return Assignment(None, f"{skipped}no available agent in team {team!r}: waits in the queue")
    agent.last_assigned_at = utcnow()
    contact.assigned_agent = agent.login
    return Assignment(agent.login, f"{skipped}assigned to {agent.login}, next in the {team!r} rotation")


def _next_in_rotation(session: Session, team: str) -> Agent | None:
    query = (
        select(Agent)
        .join(AgentTeam, AgentTeam.agent_id == Agent.id)
        .where(AgentTeam.team == team, Agent.active, Agent.available)
        .order_by(Agent.last_assigned_at.asc().nulls_first(), Agent.id)
        .limit(1)
    )
    # Another worker may be assigning this very agent: take the next one instead of waiting.
    agent = session.scalars(query.with_for_update(skip_locked=True)).first()
    return agent or session.scalars(query.with_for_update()).first()
