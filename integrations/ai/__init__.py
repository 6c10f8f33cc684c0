"""The AI agent's client: an answer for a customer's message, from the FAQ, within a deadline.

This package only *asks*: it turns the conversation and the FAQ into one chat-completions call
and the model's JSON into an ``AiAnswer`` (reply, confidence 0..1, handoff flag), or raises
``AiUnavailable`` with a short reason (timeout, refused connection, HTTP error, rate limit, an
answer that is not the JSON we asked for). It never retries and never decides: the caller sends
the reply only when the model did not ask for a person and rated it at least
``AI_MIN_CONFIDENCE``, and in every other case (low confidence, handoff, ``AiUnavailable``) hands
the conversation to a human at once. A customer is never left without an answer.

``ai_for(settings)`` is the one place that turns the ``AI_*`` settings into a responder: None
while ``AI_BASE_URL`` is unset (the AI agent is off), the model ``gpt-4o-mini`` unless
``AI_MODEL`` says otherwise, ``AI_TIMEOUT_SECONDS`` as the budget of one whole call.
"""

from __future__ import annotations

from integrations.ai.base import (
    AiAnswer,
    AiChoices,
    AiRequest,
    AiResponder,
    AiUnavailable,
    FaqItem,
    Turn,
)
from integrations.ai.openai_compatible import OpenAICompatibleResponder
from settings import Settings

DEFAULT_MODEL = "gpt-4o-mini"

__all__ = [
    "DEFAULT_MODEL",
    "AiAnswer",
    "AiChoices",
    "AiRequest",
    "AiResponder",
    "AiUnavailable",
    "FaqItem",
    "OpenAICompatibleResponder",
    "Turn",
    "ai_for",
]


def ai_for(settings: Settings) -> AiResponder | None:
    """The responder for ``settings``, or None when the AI agent is off (no ``AI_BASE_URL``);
    ValueError when ``AI_BASE_URL`` is not an http(s) URL, so a worker refuses to start."""
    base_url = (settings.ai_base_url or "").strip()
    if not base_url:
        return None
    return OpenAICompatibleResponder(
        base_url,
        settings.ai_api_key or None,
        (settings.ai_model or "").strip() or DEFAULT_MODEL,
        settings.ai_timeout_seconds,
    )
