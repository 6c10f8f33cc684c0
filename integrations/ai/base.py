"""The one interface an AI responder implements, and how a call can fail.

The caller hands a responder an ``AiRequest`` (who the business is, who the customer is, the
conversation so far with the customer's new message last, and the FAQ the answer must come from)
and gets back an ``AiAnswer``, or ``AiUnavailable``. The contract:

- An ``AiAnswer`` always has a non-empty ``reply``; ``confidence`` (0..1) and ``handoff`` are the
  model's own judgement, returned as they are. The *caller* compares ``confidence`` with
  ``AI_MIN_CONFIDENCE`` and decides whether the reply is sent or a person takes over.
- ``AiUnavailable`` means there is no usable answer (timeout, refused connection, HTTP error,
  rate limit, an answer that is not the JSON we asked for). It is never retried by the
  responder: the caller hands the conversation to a human at once instead of making the
  customer wait. ``reason`` is short, free of secrets and of customer text, fit to be stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

ROLES = ("customer", "business")


@dataclass(frozen=True)
class Turn:
    """One message of the conversation: from the customer, or from the business (a person or an
    earlier automated reply)."""

    role: str  # "customer" | "business"
    text: str

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"Turn.role must be one of {', '.join(ROLES)}, not {self.role!r}")


@dataclass(frozen=True)
class FaqItem:
    question: str
    answer: str


@dataclass(frozen=True)
class AiRequest:
    business_name: str
    customer_name: str | None
    history: tuple[Turn, ...]  # oldest first, the customer's new message last
    faq: tuple[FaqItem, ...]
    lead_class: str | None = None  # "hot" | "warm" | "cold", when known


@dataclass(frozen=True)
class AiChoices:
    """Choices the model offers the customer with its reply, as the model wrote them (WhatsApp's
    limits are checked by the caller, which sends a plain text when they do not fit):
    ``kind`` "buttons" (reply buttons, their titles) or "list" (a list message whose rows open
    from ``button``)."""

    kind: str  # "buttons" | "list"
    options: tuple[tuple[str, str | None], ...]  # (title, description) of each
    button: str | None = None  # the list's button text


@dataclass(frozen=True)
class AiAnswer:
    text: str
    confidence: float  # 0..1, as rated by the model
    handoff: bool  # the model says a human should take this
    model: str | None = None  # the model that answered, as the server named it
    choices: AiChoices | None = None  # buttons or a list to send with the reply, if the model asked


class AiUnavailable(Exception):
    """No usable answer; ``reason`` says why in a few words ("timed out after 8s", "HTTP 500",
    "answer was not the JSON we asked for")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AiResponder(Protocol):
    def answer(self, request: AiRequest) -> AiAnswer:
        """One answer for the customer's last message; ``AiUnavailable`` when there is none."""
        ...
