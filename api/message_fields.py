"""What every message in the message lists carries besides its columns (docs/interface.md
"Messages"): its WhatsApp ``kind``, its structured ``content``, who sent it (outbound), the
customer's reactions to it and the texts it had before an edit."""

from __future__ import annotations

from typing import Any

from models import Message
from models.conversations import OUTBOUND


def shown_fields(message: Message) -> dict[str, Any]:
    kind = message.raw_type or message.type
    return {
        "kind": kind,
        "content": content_of(message, kind),
        "sender": sender_of(message),
        "reactions": message.reactions or [],
        "edited_at": message.edited_at,
        "previous_texts": message.edits or [],
    }


def content_of(message: Message, kind: str) -> Any:
    """The type's own object, as WhatsApp (or our request) named it: ``{"body"}`` for text, the
    media object, the location...; a text of ours is ``{"body": text}`` whatever the gateway."""
    payload = message.payload if isinstance(message.payload, dict) else {}
    content = payload.get(kind)
    if kind == "text" and not isinstance(content, dict):  # WAHA's request names it "text": "..."
        return {"body": message.text}
    return content


def sender_of(message: Message) -> dict[str, Any] | None:
    """``{"type", "agent"}`` for an outbound message; None for the customer's. A message recorded
    before senders were (migration 0014) is automation's unless it says otherwise."""
    if message.direction != OUTBOUND:
        return None
    return {"type": message.sender_type or "automation", "agent": message.sender_agent}
