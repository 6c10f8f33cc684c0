"""Which team a conversation belongs to: the one place that says it.

A conversation is with one channel (one WhatsApp number), and its team is that channel's team,
or ``DEFAULT_TEAM`` when the channel names none (the settings channel never does). Permissions
(an agent sees the conversations of their teams), assignment (round robin within the team) and
the control API ask this module, never decide it inline.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from models import Channel, Conversation
from settings import settings


def conversation_team(session: Session, conversation_id: int) -> str:
    """The team whose agents see and answer this conversation."""
    loaded = session.identity_map.get(identity_key(Conversation, conversation_id))
    if loaded is not None and loaded.channel_id is None:
        # The settings channel has no row to name a team: no query (every inbound message's
        # live event asks, pipeline/live.py).
        return settings.default_team
    team = session.scalar(
        select(Channel.team)
        .join(Conversation, Conversation.channel_id == Channel.id)
        .where(Conversation.id == conversation_id)
    )
    return team or settings.default_team


def contact_teams(session: Session, contact_id: int) -> set[str]:
    """The teams of a contact's conversations (the default team for a contact with none yet):
    a caller in none of them does not see the contact."""
    rows = session.execute(
        select(Channel.team)
        .select_from(Conversation)
        .outerjoin(Channel, Channel.id == Conversation.channel_id)
        .where(Conversation.contact_id == contact_id)
    ).all()
    return {team or settings.default_team for (team,) in rows} or {settings.default_team}


def conversations_of_teams(teams: Collection[str]) -> Select[tuple[int]]:
    """The ids of the conversations these teams answer, for ``Conversation.id.in_(...)``: what a
    caller of those teams may read of a contact who also writes to another team's number."""
    team = func.coalesce(Channel.team, settings.default_team)
    return (
        select(Conversation.id)
        .outerjoin(Channel, Channel.id == Conversation.channel_id)
        .where(team.in_(list(teams)))
    )
