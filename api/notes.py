"""Private notes on a conversation: the team writes to itself, with @mentions of accounts.

A note is never sent to the customer: it is a row of ``conversation_notes`` and nothing is
queued. A mention names an active account by login; unknown names stay plain text. Writing a
note is audited like every other action.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from api.auth import Caller
from api.permissions import conversation_in_reach
from domain.mentions import mentioned
from models import Agent, Conversation, ConversationNote
from models.db import session_scope
from pipeline import audit

router = APIRouter(prefix="/api", tags=["human control"])

NOTE_MAX_CHARS = 4000
NOTES_SHOWN = 200


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=NOTE_MAX_CHARS)


class NoteOut(BaseModel):
    id: int
    conversation_id: int
    author: str
    text: str
    mentions: list[str]  # logins of the accounts named with @login
    created_at: datetime


@router.post("/conversations/{conversation_id}/notes", response_model=NoteOut, status_code=201)
def add_note(conversation_id: int, body: NoteIn, caller: Caller) -> NoteOut:
    text = body.text.strip()
    if not text:
        raise HTTPException(422, "text: a note needs some text")
    with session_scope() as session:
        conversation_in_reach(session, caller, conversation_id)
        if session.get(Conversation, conversation_id) is None:
            raise HTTPException(404, f"no conversation {conversation_id}")
        names = mentioned(text)
        known = (
            set(
                session.scalars(
                    select(func.lower(Agent.login)).where(func.lower(Agent.login).in_(names), Agent.active)
                )
            )
            if names
            else set()
        )
        note = ConversationNote(
            conversation_id=conversation_id,
            author=caller.login,
            text=text,
            mentions=[n for n in names if n in known],
        )
        session.add(note)
        session.flush()
        audit.record(
            session,
            caller.login,
            "conversation.noted",
            f"conversation:{conversation_id}",
            {"note_id": note.id, "mentions": note.mentions},
        )
        return NoteOut.model_validate(note, from_attributes=True)


@router.get("/conversations/{conversation_id}/notes", response_model=list[NoteOut])
def list_notes(conversation_id: int, caller: Caller) -> list[NoteOut]:
    """The conversation's notes, oldest first (the newest NOTES_SHOWN)."""
    with session_scope() as session:
        conversation_in_reach(session, caller, conversation_id)
        if session.get(Conversation, conversation_id) is None:
            raise HTTPException(404, f"no conversation {conversation_id}")
        rows = session.scalars(
            select(ConversationNote)
            .where(ConversationNote.conversation_id == conversation_id)
            .order_by(ConversationNote.id.desc())
            .limit(NOTES_SHOWN)
        ).all()
        return [NoteOut.model_validate(row, from_attributes=True) for row in reversed(rows)]
