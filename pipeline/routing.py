"""Routing: for one inbound message, what happens next, and why.

``route`` runs in the routing task's transaction (workers/routing.py), once per inbound
message. Under the contact's lock it:

1. takes a satisfaction-survey answer, if this is one;
2. re-scores the lead (hot / warm / cold, with reasons: domain.lead_score);
3. decides whether the message needs a reply at all ("ok", "terima kasih", a 👍 do not);
4. decides who answers: the human who took the conversation over; a human when automation is
   paused; otherwise automation if an FAQ entry matches, the AI agent when one is configured,
   else a human from the team (sticky, then round robin: pipeline.assignment);
5. outside business hours, sends the out-of-hours reply once per conversation;
6. stores the decision with every reason, unique per message, and queues the replies in the
   outbox in the same transaction (unique per cause, so a second run sends nothing).

A customer's thanks or goodbye closes the conversation and, when enabled, queues the survey.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from domain import automation_content, business_hours, intent, lead_score, opt_out, outbound_kinds
from domain.faq_match import FaqCandidate, best_match
from domain.replies import AI, AUTOMATION, FAQ_ANSWER, HUMAN, NOBODY
from models import Contact, Conversation, FaqEntry, Message, Order, OutboundMessage, RoutingDecision
from models.base import utcnow
from models.conversations import INBOUND, OUTBOUND
from models.labels import active_labels
from models.routing import AI_PENDING, DECIDED, SurveyResponse
from pipeline import assignment, context, crm_sync, lead_model, locks, outbox, rich_messages
from queueing import publish
from queueing.after_commit import publish_after_commit
from settings import settings

log = logging.getLogger(__name__)

# A message this old is not answered automatically any more (a lost task found by the sweeper,
# a history import): a person decides.
TOO_OLD = timedelta(hours=24)


@dataclass
class Draft:
    """The decision being made; ``reasons`` is what a person reads to see why."""

    needs_reply: bool = True
    responder: str = HUMAN
    agent: str | None = None
    faq_key: str | None = None
    out_of_hours: bool = False
    state: str = DECIDED
    reasons: list[str] = field(default_factory=list)


def route(session: Session, message_id: int) -> str:
    """Decide for one inbound message; returns the responder, or "skipped" if already decided."""
    message = session.get(Message, message_id)
    if message is None or message.direction != INBOUND:
        return "skipped"
    contact = locks.contact(session, message.contact_id)
    if contact is None or session.scalar(
        select(RoutingDecision.id).where(RoutingDecision.message_id == message_id)
    ):
        return "skipped"  # decided by an earlier delivery of this task
    conversation = session.get_one(Conversation, message.conversation_id)
    now = utcnow()

    draft = Draft()
    before = (contact.lead_class, contact.assigned_agent)
    score, by = _score_lead(session, contact, conversation, message)
    scored = f"score {score.score}" if by == lead_model.FIXED_WEIGHTS else by
    draft.reasons.append(f"lead is {score.lead_class} ({scored}): " + "; ".join(score.reasons))

    rating = _survey_answer(session, contact, message)
    if rating:
        needs, why = False, f"an answer to the satisfaction survey: {rating}/5"
    elif message.type == "text" and opt_out.is_opt_out(message.text):
        needs, why = False, "the customer opted out (STOP): no more broadcasts"
    else:
        needs, why = intent.needs_reply(message.type, message.text)
    if not needs:
        draft.needs_reply, draft.responder = False, NOBODY
        draft.reasons.append(f"no reply needed: {why}")
        if rating is None and intent.is_closing(message.text):
            _close(session, contact, conversation, message, draft)
    elif _answered_since(conversation, message):
        draft.needs_reply, draft.responder = False, NOBODY
        draft.reasons.append("already answered: a reply went out after this message")
    elif now - message.occurred_at > TOO_OLD:
        draft.reasons.append("the message is over a day old: a person decides")
    elif contact.automation_paused_at is not None:
        draft.reasons.append("automation is paused for this contact")
    elif conversation.owner_agent:
        draft.agent = conversation.owner_agent
        draft.reasons.append(f"{conversation.owner_agent} took over this conversation")
    else:
        draft.reasons.append(f"needs a reply: {why}")
        if conversation.closed_at is not None and conversation.closed_at <= message.occurred_at:
            conversation.closed_at = conversation.closed_reason = conversation.closed_in_window = None
            draft.reasons.append("the conversation is open again")
        _reply_out_of_hours(session, contact, conversation, message, draft)
        _choose_automation(session, contact, conversation, message, draft)

    if draft.needs_reply and (draft.responder == HUMAN or score.lead_class == lead_score.HOT):
        _assign(session, contact, conversation, draft, hot_lead=draft.responder != HUMAN)
    decision = RoutingDecision(
        message_id=message.id,
        contact_id=contact.id,
        conversation_id=conversation.id,
        needs_reply=draft.needs_reply,
        responder=draft.responder,
        agent=draft.agent,
        lead_class=score.lead_class,
        lead_score=score.score,
        scored_by=by,
        faq_key=draft.faq_key,
        out_of_hours=draft.out_of_hours,
        respond_by=message.occurred_at + response_target(score.lead_class)
        if draft.responder == HUMAN
        else None,
        reasons=draft.reasons,
        state=draft.state,
        published_at=now if draft.state == AI_PENDING else None,
        created_at=now,
    )
    session.add(decision)
    session.flush()
    if (contact.lead_class, contact.assigned_agent) != before:
        crm_sync.queue_sync(session, contact.id, "lead class or assignment")  # Odoo's stars and salesperson
    if draft.state == AI_PENDING:
        publish_after_commit(session, "ai_to_publish", decision.id, publish.answer_with_ai)
    return draft.responder


def _answered_since(conversation: Conversation, message: Message) -> bool:
    """A message routed late (its task was lost and the sweeper found it) that a reply has
    answered since: answering it now would answer twice. Messages routed on time are not
    second-guessed: in a burst, the reply to the first must not silence the second."""
    if utcnow() - message.created_at < timedelta(seconds=settings.inbox_sweep_after_seconds):
        return False
    return context.answered_since(conversation, message)


def response_target(lead_class: str | None) -> timedelta:
    """How soon a human should answer, by lead class: hot leads first."""
    seconds = {
        lead_score.HOT: settings.response_target_hot_seconds,
        lead_score.WARM: settings.response_target_warm_seconds,
    }.get(lead_class or "", settings.response_target_cold_seconds)
    return timedelta(seconds=seconds)


def _score_lead(
    session: Session, contact: Contact, conversation: Conversation, message: Message
) -> tuple[lead_score.LeadScore, str]:
    """The lead's class, score and reasons, and what scored it: the active learned model
    (pipeline/lead_model.py; its score is the chance of an order in percent), else the fixed
    weights."""
    inbound = session.scalar(
        select(func.count(Message.id)).where(
            Message.conversation_id == conversation.id, Message.direction == INBOUND
        )
    )
    orders = session.execute(
        select(Order.stage, Order.cancelled_at).where(Order.contact_id == contact.id)
    ).all()
    open_orders = sum(1 for stage, cancelled in orders if cancelled is None and stage != "received")
    score = lead_score.classify(
        lead_score.LeadSignals(
            text=message.text,
            inbound_messages=int(inbound or 0),
            typical_response_seconds=contact.typical_response_seconds,
            active_labels=tuple(active_labels(session, [contact.id]).get(contact.id, ())),
            open_orders=open_orders,
            past_orders=len(orders) - open_orders,
            earlier_intent=tuple(conversation.intents or ()),
        )
    )
    if score.intents:
        conversation.intents = sorted({*(conversation.intents or ()), *score.intents})
    learned = lead_model.score(session, conversation.id)
    if learned is not None:
        score = lead_score.LeadScore(
            learned.lead_class, round(learned.chance * 100), learned.reasons, score.intents
        )
    by = lead_model.scored_by(learned.model_id if learned else None)
    contact.lead_class, contact.lead_score, contact.lead_reasons, contact.lead_scored_by = (
        score.lead_class,
        score.score,
        list(score.reasons),
        by,
    )
    return score, by


def _survey_answer(session: Session, contact: Contact, message: Message) -> int | None:
    """If we asked this customer for a rating in the last day and they have not given one, a
    rating in this message is their answer: stored, and it needs no reply."""
    rating = intent.survey_rating(message.text)
    if rating is None and message.type == "interactive":
        rating = automation_content.rating_of_list_reply(message.payload)
    if rating is None:
        return None
    # Our last message before this one (customer messages are timed to the second; ours are not).
    last_ours = session.execute(
        select(Message.conversation_id, OutboundMessage.trigger)
        .outerjoin(OutboundMessage, OutboundMessage.message_id == Message.id)
        .where(
            Message.contact_id == contact.id,
            Message.direction == OUTBOUND,
            Message.occurred_at >= message.occurred_at - TOO_OLD,
            Message.occurred_at < message.occurred_at + timedelta(seconds=1),
        )
        .order_by(Message.occurred_at.desc())
        .limit(1)
    ).first()
    if last_ours is None or last_ours.trigger != automation_content.SURVEY:
        return None  # a number answering something else we asked ("mau berapa pcs?" "2")
    surveyed = last_ours.conversation_id
    if session.scalar(select(SurveyResponse.id).where(SurveyResponse.conversation_id == surveyed)):
        return None
    session.add(
        SurveyResponse(
            conversation_id=surveyed,
            contact_id=contact.id,
            message_id=message.id,
            rating=rating,
            text=message.text,
        )
    )
    return rating


def _close(
    session: Session, contact: Contact, conversation: Conversation, message: Message, draft: Draft
) -> None:
    """The customer said thanks or goodbye: the conversation is closed, and surveyed if enabled."""
    if conversation.closed_at is None:
        conversation.closed_at = message.occurred_at
        conversation.closed_reason = "the customer said thanks or goodbye"
        conversation.closed_in_window = message.occurred_at - conversation.started_at <= timedelta(hours=24)
        draft.reasons.append("the conversation is closed")
    if not settings.survey_enabled or conversation.last_outbound_at is None:
        return
    if contact.automation_paused_at is not None:
        draft.reasons.append("no survey: automation is paused for this contact")
        return
    queued = _queue_survey(session, contact, conversation)
    if queued:
        draft.reasons.append("satisfaction survey sent")


def _queue_survey(session: Session, contact: Contact, conversation: Conversation) -> int | None:
    """The survey: an interactive list of ratings on a Cloud API number (``[survey_list]`` of the
    automation file), else the plain text asking for a number."""
    survey = automation_content.survey_list_from(settings.automation_file)
    if survey is None or rich_messages.gateway_kind(session, conversation.channel_id) == "waha":
        return queue_automation_message(
            session, contact, automation_content.SURVEY, f"survey:{conversation.id}", conversation.channel_id
        )
    prepared = rich_messages.prepare(
        session, survey.body({"name": contact.name, "business": settings.business_name}), "cloud"
    )
    return outbox.queue(
        session,
        dedupe_key=f"survey:{conversation.id}",
        trigger=automation_content.SURVEY,
        contact_id=contact.id,
        channel_id=conversation.channel_id,
        text=prepared.text,
        body=prepared.body,
    )


def _reply_out_of_hours(
    session: Session, contact: Contact, conversation: Conversation, message: Message, draft: Draft
) -> None:
    if business_hours.is_open(opening_hours(), message.occurred_at, settings.timezone):
        return
    draft.out_of_hours = True
    queued = queue_automation_message(
        session,
        contact,
        automation_content.OUT_OF_HOURS,
        f"out_of_hours:{conversation.id}",
        conversation.channel_id,
    )
    draft.reasons.append(
        "outside business hours: out-of-hours reply sent"
        if queued
        else "outside business hours: the out-of-hours reply was already sent in this conversation"
    )


def _choose_automation(
    session: Session, contact: Contact, conversation: Conversation, message: Message, draft: Draft
) -> None:
    entries = {entry.key: entry for entry in session.scalars(select(FaqEntry).where(FaqEntry.active))}
    match = best_match(
        message.text,
        [FaqCandidate(key, tuple(entry.questions)) for key, entry in entries.items()],
        settings.faq_match_threshold,
    )
    if match is not None:
        entry = entries[match.key]
        draft.responder, draft.faq_key = AUTOMATION, entry.key
        draft.reasons.append(
            f"automation answers: matches {entry.kind} {entry.key!r} "
            f"({match.score:.0f}% like {match.question!r})"
        )
        text, body = faq_reply(entry)
        outbox.queue(
            session,
            dedupe_key=f"reply:{message.id}",
            trigger=FAQ_ANSWER,
            contact_id=contact.id,
            channel_id=conversation.channel_id,
            text=text,
            body=body,
        )
    elif settings.ai_base_url and message.text:
        draft.responder, draft.state = AI, AI_PENDING
        draft.reasons.append("no FAQ entry matches: the AI agent answers")
    elif settings.ai_base_url:
        draft.reasons.append(f"a {message.type} without text: a human answers")
    else:
        draft.reasons.append("no FAQ entry matches and no AI agent is configured: a human answers")


def _assign(
    session: Session, contact: Contact, conversation: Conversation, draft: Draft, *, hot_lead: bool
) -> None:
    if draft.agent:  # the conversation's owner
        return
    picked = assignment.assign(session, contact, conversation)
    draft.reasons.append(f"hot lead, for follow-up: {picked.reason}" if hot_lead else picked.reason)
    if not hot_lead:
        draft.agent = picked.agent


def faq_reply_text(entry: FaqEntry) -> str:
    """The answer, with its image, document or link as a URL WhatsApp previews."""
    return f"{entry.answer}\n\n{entry.media_url}" if entry.media_url else entry.answer


def faq_reply(entry: FaqEntry) -> tuple[str, dict[str, Any] | None]:
    """The answer as one message (text, rich body): an image or document goes as that media
    message with the answer as its caption, a link as a text with its preview on. What WhatsApp
    would refuse so (a caption over 1024 characters, an http:// file) goes as before: the answer
    with the URL appended."""
    url, kind = entry.media_url, entry.media_type
    if not url:
        return entry.answer, None
    if kind in ("image", "document"):
        media: dict[str, Any] = {"link": url, "caption": entry.answer}
        if kind == "document":
            media["filename"] = url.rstrip("/").rsplit("/", 1)[-1].split("?")[0][:240] or "document"
        body: dict[str, Any] = {"type": kind, kind: media}
    else:
        body = {"type": "text", "text": {"body": faq_reply_text(entry), "preview_url": True}}
    try:
        return outbound_kinds.readable_text(outbound_kinds.check(body)), body
    except outbound_kinds.NotSendable:
        return faq_reply_text(entry), None


def queue_automation_message(
    session: Session, contact: Contact, trigger: str, dedupe_key: str, channel_id: int | None
) -> int | None:
    template = automation_content.messages_from(settings.automation_file)[trigger]
    text, template_call = template.render({"name": contact.name, "business": settings.business_name})
    return outbox.queue(
        session,
        dedupe_key=dedupe_key,
        trigger=trigger,
        contact_id=contact.id,
        channel_id=channel_id,
        text=text,
        template=template_call,
    )


@cache
def opening_hours() -> business_hours.BusinessHours:
    return business_hours.parse(settings.business_hours)
