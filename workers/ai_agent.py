"""The AI agent: answers a message routing gave it, or hands it to a human. Never silence.

``answer_with_ai`` reads the conversation and the FAQ in one short transaction, calls the
OpenAI-compatible endpoint outside any transaction (with AI_TIMEOUT_SECONDS as its deadline),
then settles the decision under the contact's lock: the answer goes to the outbox (unique per
message, so a second run sends nothing; as interactive buttons or a list when the model offered
choices that WhatsApp takes, as text otherwise), or, on any error, a handoff, or a confidence below
AI_MIN_CONFIDENCE, the decision becomes a human's, assigned like any other. If the task is lost,
the routing sweeper publishes it again.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.outbound_kinds import NotSendable, choices_body
from domain.replies import AI_ANSWER, HUMAN
from integrations.ai import AiAnswer, AiRequest, AiResponder, AiUnavailable, FaqItem, Turn, ai_for
from models import Contact, Conversation, FaqEntry, Message, RoutingDecision
from models.base import utcnow
from models.conversations import INBOUND
from models.db import session_scope
from models.routing import AI_PENDING, DECIDED
from observability.metrics import AI_ANSWERS
from pipeline import assignment, context, crm_sync, locks, outbox, rich_messages
from pipeline.routing import response_target
from queueing import names
from queueing.tasks import event_task
from settings import settings

log = logging.getLogger(__name__)

HISTORY = 20  # the newest messages of the conversation the model sees
# An answer this late is no answer: the task was lost or the queue is far behind. A person takes it.
GIVE_UP_AFTER = timedelta(minutes=10)


@cache
def responder() -> AiResponder | None:
    return ai_for(settings)


@event_task(names.ANSWER_WITH_AI)
def answer_with_ai(decision_id: int) -> str:
    with session_scope() as session:
        prepared = _request_for(session, decision_id)
    if prepared is None:
        return "skipped"
    request, waited = prepared
    answer, failure = None, None
    try:
        ai = responder()
        if waited > GIVE_UP_AFTER:
            failure = f"the message waited {waited.total_seconds() / 60:.0f} minutes for the AI agent"
        elif ai is None:
            failure = "AI_BASE_URL is not set any more"
        else:
            answer = ai.answer(request)
    except AiUnavailable as exc:
        failure = exc.reason
    except Exception as exc:  # a bug or a bad setting must not leave the customer unanswered
        log.exception("AI agent failed", extra={"decision_id": decision_id})
        failure = f"the AI agent failed: {type(exc).__name__}"
    with session_scope() as session:
        outcome = _settle(session, decision_id, answer, failure)
    AI_ANSWERS.labels(outcome).inc()
    return outcome


def _request_for(session: Session, decision_id: int) -> tuple[AiRequest, timedelta] | None:
    """What the model is given, and how long the decision has waited for it."""
    decision = session.get(RoutingDecision, decision_id)
    if decision is None or decision.state != AI_PENDING:
        return None
    message = session.get_one(Message, decision.message_id)
    contact = session.get_one(Contact, decision.contact_id)
    recent = session.scalars(
        select(Message)
        .where(
            Message.conversation_id == decision.conversation_id, Message.occurred_at <= message.occurred_at
        )
        .order_by(Message.occurred_at.desc(), Message.id.desc())
        .limit(HISTORY)
    ).all()
    history = tuple(
        Turn("customer" if m.direction == INBOUND else "business", m.text) for m in reversed(recent) if m.text
    )
    faq = tuple(
        FaqItem(question=entry.questions[0], answer=entry.answer)
        for entry in session.scalars(select(FaqEntry).where(FaqEntry.active).order_by(FaqEntry.key))
    )
    request = AiRequest(
        business_name=settings.business_name,
        customer_name=contact.name,
        history=history,
        faq=faq,
        lead_class=decision.lead_class,
    )
    return request, utcnow() - decision.created_at


def _rich_reply(
    session: Session, answer: AiAnswer, channel_id: int | None
) -> tuple[dict[str, Any] | None, str | None]:
    """The reply as interactive buttons or a list when the model offered choices and WhatsApp (and
    the channel's gateway) would take them; else None (a plain text) and why, for the reasons."""
    if answer.choices is None:
        return None, None
    choices = answer.choices
    body = choices_body(answer.text, choices.kind, list(choices.options), choices.button)
    try:
        prepared = rich_messages.prepare(session, body, rich_messages.gateway_kind(session, channel_id))
    except NotSendable as exc:
        log.info("AI choices not sendable; replied as text", extra={"field": exc.field})
        return None, f"its {choices.kind} went as plain text ({exc})"
    return prepared.body, None


def _settle(session: Session, decision_id: int, answer: AiAnswer | None, failure: str | None) -> str:
    decision = session.get(RoutingDecision, decision_id)
    if decision is None:
        return "skipped"
    contact = locks.contact(session, decision.contact_id)
    session.refresh(decision, with_for_update=True)
    if contact is None or decision.state != AI_PENDING:
        return "skipped"  # settled by a twin of this task
    conversation = session.get_one(Conversation, decision.conversation_id)
    decision.state = DECIDED
    reasons = list(decision.reasons)
    message = session.get_one(Message, decision.message_id)
    if contact.automation_paused_at is not None or conversation.owner_agent:
        failure = "automation was paused or a human took over meanwhile"
    elif context.answered_since(conversation, message):
        failure = "someone answered meanwhile"
    elif answer is not None and answer.handoff:
        failure = f"the model asked for a human (confidence {answer.confidence:.2f})"
    elif answer is not None and answer.confidence < settings.ai_min_confidence:
        failure = f"confidence {answer.confidence:.2f} is below {settings.ai_min_confidence:.2f}"
    if failure is None and answer is not None:
        body, as_text = _rich_reply(session, answer, conversation.channel_id)
        outbox.queue(
            session,
            dedupe_key=f"reply:{decision.message_id}",
            trigger=AI_ANSWER,
            contact_id=contact.id,
            channel_id=conversation.channel_id,
            text=answer.text,
            body=body,
        )
        said = f"the AI agent answered (confidence {answer.confidence:.2f})"
        decision.reasons = [*reasons, said, *([as_text] if as_text else [])]
        return "answered"
    # Never silence: a person answers instead, the conversation's owner if it has one.
    if conversation.owner_agent:
        agent, why = conversation.owner_agent, f"{conversation.owner_agent} took over this conversation"
    else:
        before = contact.assigned_agent
        picked = assignment.assign(session, contact, conversation)
        agent, why = picked.agent, picked.reason
        if contact.assigned_agent != before:
            crm_sync.queue_sync(session, contact.id, "assignment")
    decision.responder, decision.agent = HUMAN, agent
    decision.respond_by = message.occurred_at + response_target(decision.lead_class)
    decision.reasons = [*reasons, f"the AI agent did not answer: {failure}; a human answers", why]
    log.info("AI agent handed a message to a human", extra={"decision_id": decision_id, "why": failure})
    return "handed_over"
