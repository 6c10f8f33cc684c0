"""A customer's reaction to a message, and an edit of a message: changes of a message already
in the history, never a new message to answer (docs/echoes.md).

A reaction is kept on the message it targets (``reactions``: one per person, the latest wins; an
empty emoji takes it away). An edit replaces the message's text and keeps the text it had
(``edits``, oldest first; ``edited_at``). Both arrive as events of their own, so a replay is
already stopped at the inbox; events out of order are settled by their times. When the target is
not in our history (sent before we were connected), the event is stored as a message after all:
nothing the customer said is lost.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.message_types import describe
from models import Message
from pipeline import context, locks


def record_cloud_message(session: Session, payload: dict[str, Any]) -> Message | None:
    """A Cloud API inbound message: a reaction or an edit changes its target; anything else (or
    one whose target we do not have) joins the conversation as a message."""
    message = payload["message"]
    at = datetime.fromtimestamp(int(message["timestamp"]), UTC)
    body = message.get(message.get("type")) if isinstance(message.get(message.get("type")), dict) else {}
    who = str(message.get("from") or message.get("from_user_id") or "")
    if message.get("type") == "reaction" and body.get("message_id"):
        if react(session, str(body["message_id"]), body.get("emoji") or "", who, at):
            return None
    elif message.get("type") == "edit" and body.get("original_message_id"):
        edited = body.get("message") if isinstance(body.get("message"), dict) else {}
        if edit(session, str(body["original_message_id"]), edited, at):
            return None
        # Its original is not ours to change: the edited message is what the customer said.
        message = {**{k: v for k, v in message.items() if k != "edit"}, **edited, "id": message["id"]}
        payload = {**payload, "message": message}
    return context.record_inbound_message(session, payload)


def target(session: Session, external_id: str) -> Message | None:
    """The message an event changes, locked (its contact first, then it), or None if unknown."""
    contact_id = session.scalar(select(Message.contact_id).where(Message.external_id == external_id))
    if contact_id is None:
        return None
    locks.contact(session, contact_id)
    locks.message(session, external_id)
    return session.scalars(
        select(Message).where(Message.external_id == external_id).execution_options(populate_existing=True)
    ).first()


def react(session: Session, external_id: str, emoji: str, who: str, at: datetime) -> bool:
    """``who`` reacted with ``emoji`` to the message (empty: took the reaction away); False when
    the message is not ours to change."""
    message = target(session, external_id)
    if message is None:
        return False
    reactions = list(message.reactions or [])
    mine = next((r for r in reactions if r.get("from") == who), None)
    if mine is not None and mine.get("at", "") > at.isoformat():
        return True  # a later reaction of theirs is already applied
    reactions = [r for r in reactions if r.get("from") != who]
    if emoji:
        reactions.append({"emoji": emoji, "from": who, "at": at.isoformat()})
    message.reactions = reactions  # a new list: JSON columns see only assignments
    return True


def edit(session: Session, external_id: str, edited: dict[str, Any], at: datetime) -> bool:
    """The message now reads as ``edited`` (a Cloud API message object: ``{"type", "<type>"}``);
    its text before is kept. False when the message is not ours to change."""
    message = target(session, external_id)
    if message is None:
        return False
    kind = str(edited.get("type") or message.type)
    new_text = describe({**edited, "type": kind}).text
    history = list(message.edits or [])
    if message.edited_at is not None and at < message.edited_at:
        # An older edit told late: it is one of the texts the message had, not what it reads now.
        history.append({"text": new_text, "at": at.isoformat()})
        message.edits = sorted(history, key=lambda e: e["at"])
        return True
    history.append({"text": message.text, "at": at.isoformat()})
    message.edits = history
    message.text, message.edited_at = new_text, at
    if isinstance(edited.get(kind), dict) and isinstance(message.payload, dict):
        before = message.payload.get(kind) if isinstance(message.payload.get(kind), dict) else {}
        message.payload = {**message.payload, kind: {**before, **edited[kind]}}  # a media id stays
    return True
