"""What a Cloud API message is, in a form the rest of the system can search and show.

Every type keeps its full payload in the database; this module only derives the type we file it
under and a readable text. A type we do not know is filed as ``unsupported`` with its original
name kept in ``raw_type``: never rejected, never dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

MEDIA_TYPES = frozenset({"image", "video", "audio", "document", "sticker"})
KNOWN_TYPES = MEDIA_TYPES | {
    "text",
    "interactive",
    "button",
    "location",
    "reaction",
    "order",
    "contacts",
    "system",
    "revoke",
    "unsupported",
}


@dataclass(frozen=True)
class MessageContent:
    type: str
    raw_type: str | None
    text: str | None
    reply_to: str | None
    referral: dict[str, Any] | None


def describe(message: dict[str, Any]) -> MessageContent:
    declared = str(message.get("type") or "unsupported")
    kind = declared if declared in KNOWN_TYPES else "unsupported"
    body = message.get(declared)
    body = body if isinstance(body, dict) else {}
    context = message.get("context") if isinstance(message.get("context"), dict) else {}
    referral = message.get("referral") if isinstance(message.get("referral"), dict) else None
    return MessageContent(
        type=kind,
        raw_type=declared if declared != kind else None,
        text=_text_of(kind, body, message),
        reply_to=context.get("id"),
        referral=referral,
    )


def flow_answers(nfm_reply: dict[str, Any]) -> dict[str, Any]:
    """A Flow completion's answers: ``response_json`` is a JSON *string*; the flow_token is ours,
    not the customer's answer, and is left out."""
    try:
        answers = json.loads(nfm_reply.get("response_json") or "{}")
    except (TypeError, ValueError):
        return {}
    if not isinstance(answers, dict):
        return {}
    return {key: value for key, value in answers.items() if key != "flow_token"}


def flow_answer_text(nfm_reply: dict[str, Any]) -> str | None:
    """``name: Budi, city: Bandung``: a completed Flow read as what the customer answered."""
    answers = flow_answers(nfm_reply)
    if not answers:
        return nfm_reply.get("body") or None
    return ", ".join(f"{key}: {value}" for key, value in answers.items() if value not in ("", None))[:4096]


def _text_of(kind: str, body: dict[str, Any], message: dict[str, Any]) -> str | None:
    if kind == "text":
        return body.get("body")
    if kind in MEDIA_TYPES:
        return body.get("caption") or body.get("filename")
    if kind == "interactive":
        reply = body.get(body.get("type", ""), {})
        if body.get("type") == "nfm_reply" and isinstance(reply, dict):
            return flow_answer_text(reply)
        return reply.get("title") if isinstance(reply, dict) else None
    if kind == "button":
        return body.get("text") or body.get("payload")
    if kind == "location":
        parts = [body.get("name"), body.get("address")]
        named = ", ".join(p for p in parts if p)
        return named or f"{body.get('latitude')},{body.get('longitude')}"
    if kind == "reaction":
        return body.get("emoji") or None  # an empty emoji removes a reaction
    if kind == "order":
        items = body.get("product_items") or []
        return body.get("text") or f"order of {len(items)} item(s)"
    if kind == "contacts":
        cards = message.get("contacts") or []
        names = [c.get("name", {}).get("formatted_name") for c in cards if isinstance(c, dict)]
        return ", ".join(n for n in names if n) or None
    if kind == "system":
        return body.get("body")
    if kind == "unsupported":
        errors = message.get("errors") or []
        return errors[0].get("title") if errors and isinstance(errors[0], dict) else None
    return None
