"""Which team a conversation belongs to: the one place that says it.

Permissions (an agent sees the conversations of their teams) and assignment ask this module,
never decide it inline. Until conversations carry a channel, every conversation belongs to
``DEFAULT_TEAM``; with channels, the body of ``conversation_team`` becomes the channel's team.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Conversation
from settings import settings


def conversation_team(session: Session, conversation_id: int) -> str:
    """The team whose agents see and answer this conversation."""
    return settings.default_team


def contact_teams(session: Session, contact_id: int) -> set[str]:
    """The teams of a contact's conversations (the default team for a contact with none yet):
    a caller in none of them does not see the contact."""
    conversations = session.scalars(
        select(Conversation.id).where(Conversation.contact_id == contact_id)
    ).all()
    return {conversation_team(session, c) for c in conversations} or {settings.default_team}
