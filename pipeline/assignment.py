"""Assignment: which sales agent answers a contact.

Sticky first: a contact keeps, on each channel, the agent who already looks after them there
(the latest assignee of their conversations on that channel) while that agent is available.
Otherwise round robin within the team of the conversation's channel
(``teams.conversation_team``): the available agent assigned longest ago is next. The
pick locks that agent's row with SKIP LOCKED, so two workers assigning at the same moment take
two different agents instead of both taking the same one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Agent, AgentTeam, Contact, Conversation
from models.base import utcnow
from pipeline import channels, teams


@dataclass(frozen=True)
class Assignment:
    agent: str | None
    reason: str


def assign(session: Session, contact: Contact, conversation: Conversation) -> Assignment:
    """The agent for ``conversation`` (now its ``assigned_agent``, and the contact's), or None
    when nobody is available."""
    team = teams.conversation_team(session, conversation.id)
    skipped = ""
    sticky = sticky_owner(session, contact, conversation)
    if sticky:
        owner = session.scalar(select(Agent).where(Agent.login == sticky))
        if owner is not None and owner.active and owner.available:
            conversation.assigned_agent = contact.assigned_agent = owner.login
            return Assignment(owner.login, f"stays with {owner.login}, who already looks after this contact")
        skipped = f"{sticky} is unavailable; "
    agent = _next_in_rotation(session, team)
    if agent is None:
        return Assignment(None, f"{skipped}no available agent in team {team!r}: waits in the queue")
    agent.last_assigned_at = utcnow()
    conversation.assigned_agent = contact.assigned_agent = agent.login
    return Assignment(agent.login, f"{skipped}assigned to {agent.login}, next in the {team!r} rotation")


def sticky_owner(session: Session, contact: Contact, conversation: Conversation) -> str | None:
    """Who already looks after the contact on this conversation's channel: the conversation's
    assignee, else the latest assignee of their earlier conversations on that channel. On the
    settings channel (the one number of an install before channels), the contact's own
    ``assigned_agent`` as before, which a merge of two contacts keeps."""
    if conversation.assigned_agent:
        return conversation.assigned_agent
    earlier = session.scalar(
        select(Conversation.assigned_agent)
        .where(
            Conversation.contact_id == contact.id,
            channels.same(Conversation.channel_id, conversation.channel_id),
            Conversation.assigned_agent.is_not(None),
        )
        .order_by(Conversation.last_message_at.desc())
        .limit(1)
    )
    if earlier is None and conversation.channel_id is None:
        return contact.assigned_agent
    return earlier


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
