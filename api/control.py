"""Human control: people override the automation, and every action is audited.

Take over a conversation, answer it, override a routing decision, pause or resume all automation
for a contact, change the adaptive follow-up rules. Each action writes an ``audit_log`` row with who
(the signed-in account's login; ``admin`` for ADMIN_TOKEN) and when, in the same transaction as
the change. A client-supplied name (the former ``X-Actor`` header) is ignored. Contacts and
conversations outside the caller's teams answer 404 (``api.permissions``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Body, Header, HTTPException, Query
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import case, select
from sqlalchemy.orm import Session

from api.auth import Caller, Principal
from api.permissions import contact_in_reach, conversation_in_reach
from domain import service_window
from domain.outbound_kinds import TEXT_MAX, NotSendable
from domain.replies import AUTOMATION, CONVERSATIONAL, FAQ_ANSWER, HUMAN, HUMAN_REPLY, NOBODY
from models import (
    Agent,
    AuditEntry,
    Contact,
    Conversation,
    FaqEntry,
    FollowupRules,
    Message,
    OutboundMessage,
    RoutingDecision,
)
from models.base import utcnow
from models.contacts import current_contact
from models.db import locked_row, session_scope
from models.routing import DECIDED
from pipeline import adaptive_followups, assignment, channels, crm_sync, locks, outbox, rich_messages, teams
from pipeline import audit as audit_trail
from pipeline.routing import faq_reply

router = APIRouter(prefix="/api", tags=["human control"])

T = TypeVar("T", Conversation, RoutingDecision)
Limit = Annotated[int, Query(ge=1, le=500)]


class AutomationIn(BaseModel):
    paused: bool


class AutomationOut(BaseModel):
    contact_id: int
    automation_paused: bool
    paused_at: datetime | None
    cancelled_messages: int  # queued automatic messages that will not go out now


class AssigneeIn(BaseModel):
    agent: str | None = Field(max_length=64, description="the agent who takes over; null hands it back")


class AssigneeOut(BaseModel):
    conversation_id: int
    owner_agent: str | None
    cancelled_messages: int


class ReplyOut(BaseModel):
    outbound_id: int | None  # None: this Idempotency-Key was used already, nothing new queued


class OverrideIn(BaseModel):
    responder: Literal["human", "automation", "none"]
    agent: str | None = Field(default=None, max_length=64)  # human: this agent (else the rotation)
    faq_key: str | None = Field(default=None, max_length=100)  # automation: send this entry's answer
    reason: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _automation_needs_an_answer(self) -> OverrideIn:
        if self.responder == AUTOMATION and not self.faq_key:
            raise ValueError("faq_key: required when automation is to answer")
        return self


class DecisionOut(BaseModel):
    id: int
    message_id: int
    conversation_id: int
    needs_reply: bool
    responder: str
    agent: str | None
    lead_class: str | None
    lead_score: int | None
    scored_by: str | None  # "fixed weights" or "model 3" (the learned lead score)
    faq_key: str | None
    out_of_hours: bool
    respond_by: datetime | None
    reasons: list[str]
    state: str
    overridden_by: str | None
    overridden_at: datetime | None
    created_at: datetime


class DecisionPage(BaseModel):
    items: list[DecisionOut]
    next_cursor: str | None


class RulesIn(BaseModel):
    enabled: bool = True
    min_delay_seconds: float = Field(gt=0, le=30 * 86400)
    max_delay_seconds: float = Field(gt=0, le=30 * 86400)
    max_attempts: int = Field(ge=0, le=10)

    @model_validator(mode="after")
    def _bounds_in_order(self) -> RulesIn:
        if self.min_delay_seconds > self.max_delay_seconds:
            raise ValueError("min_delay_seconds: must not exceed max_delay_seconds")
        return self


class RulesOut(RulesIn):
    scope: str  # "default", "contact:<id>", or "settings" (nothing set through the API yet)


class AuditOut(BaseModel):
    id: int
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    created_at: datetime


class AuditPage(BaseModel):
    items: list[AuditOut]
    next_cursor: str | None


@router.post("/contacts/{contact_id}/automation", response_model=AutomationOut)
def set_automation(contact_id: int, body: AutomationIn, caller: Caller) -> AutomationOut:
    """Pause or resume every automatic message to this contact (replies, follow-ups, surveys,
    order messages, broadcasts). A pause also cancels what is queued and not yet sent."""
    actor = caller.login
    with session_scope() as session:
        contact_in_reach(session, caller, contact_id)
        contact = _contact(session, contact_id)
        cancelled = 0
        if body.paused and contact.automation_paused_at is None:
            contact.automation_paused_at = utcnow()
            cancelled = _cancel_queued(session, contact.id, None, "automation is paused for this contact")
        elif not body.paused:
            contact.automation_paused_at = None
        audit(
            session,
            actor,
            "automation.paused" if body.paused else "automation.resumed",
            f"contact:{contact.id}",
        )
        return AutomationOut(
            contact_id=contact.id,
            automation_paused=body.paused,
            paused_at=contact.automation_paused_at,
            cancelled_messages=cancelled,
        )


@router.post("/conversations/{conversation_id}/assignee", response_model=AssigneeOut)
def take_over(conversation_id: int, body: AssigneeIn, caller: Caller) -> AssigneeOut:
    """A human takes the conversation over: automation stops answering it (queued automatic
    replies are cancelled) and the contact is theirs. ``null`` hands it back to routing. The
    agent must be a member of the conversation's team."""
    actor = caller.login
    with session_scope() as session:
        conversation_in_reach(session, caller, conversation_id)
        contact, conversation = _locked_with_contact(session, Conversation, conversation_id, "conversation")
        cancelled = 0
        if body.agent is not None:
            _agent(session, body.agent, teams.conversation_team(session, conversation.id))
            contact.assigned_agent = conversation.assigned_agent = body.agent
            cancelled = _cancel_queued(session, contact.id, CONVERSATIONAL, f"{body.agent} took over")
            crm_sync.queue_sync(session, contact.id, "assignment")
        previous, conversation.owner_agent = conversation.owner_agent, body.agent
        audit(
            session,
            actor,
            "conversation.taken_over" if body.agent else "conversation.released",
            f"conversation:{conversation.id}",
            {"agent": body.agent, "previous": previous},
        )
        return AssigneeOut(
            conversation_id=conversation.id, owner_agent=body.agent, cancelled_messages=cancelled
        )


@router.post("/conversations/{conversation_id}/messages", response_model=ReplyOut, status_code=202)
def reply(
    conversation_id: int,
    caller: Caller,
    body: Annotated[dict[str, Any], Body(description='{"text": ...} or a Cloud API message object')],
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=100)] = None,
) -> ReplyOut:
    """An agent answers the customer through the outbound worker (the reply counts as a human's
    in the journey metrics): ``{"text": ...}``, or any kind WhatsApp sends as a Cloud API message
    object without ``messaging_product``/``to`` (docs/rich-messages.md), checked before it is
    queued. Repeat the request with the same ``Idempotency-Key`` safely."""
    actor = caller.login
    with session_scope() as session:
        conversation_in_reach(session, caller, conversation_id)
        contact, conversation = _locked_with_contact(session, Conversation, conversation_id, "conversation")
        gateway = rich_messages.gateway_kind(session, conversation.channel_id)
        prepared = _prepared(session, body, gateway)
        is_template = prepared is not None and prepared.body["type"] == "template"
        if (
            gateway != "waha"
            and not is_template
            and not service_window.is_open(contact.last_inbound_at, utcnow())
        ):
            raise HTTPException(
                422, "type: the 24-hour window is closed; only a template can go (type: template)"
            )
        outbound_id = outbox.queue(
            session,
            dedupe_key=f"human:{conversation_id}:{idempotency_key or uuid.uuid4().hex}",
            trigger=HUMAN_REPLY,
            contact_id=contact.id,
            channel_id=conversation.channel_id,
            text=prepared.text if prepared else body["text"],
            body=prepared.body if prepared else None,
            media_file_id=prepared.media_file_id if prepared else None,
            sender_agent=actor,
        )
        if outbound_id is not None:
            details: dict[str, Any] = {"outbound_id": outbound_id}
            if prepared is not None:
                details["type"] = prepared.body["type"]
            audit(session, actor, "conversation.replied", f"conversation:{conversation_id}", details)
        return ReplyOut(outbound_id=outbound_id)


class ClosedOut(BaseModel):
    conversation_id: int
    closed_at: datetime | None
    closed_reason: str | None


@router.post("/conversations/{conversation_id}/close", response_model=ClosedOut)
def close_conversation(conversation_id: int, caller: Caller) -> ClosedOut:
    """A person closes the conversation: it leaves the open queues (a new message from the
    customer opens it again, as routing does after a goodbye). Closing a closed one changes
    nothing."""
    with session_scope() as session:
        conversation_in_reach(session, caller, conversation_id)
        _, conversation = _locked_with_contact(session, Conversation, conversation_id, "conversation")
        if conversation.closed_at is None:
            now = utcnow()
            conversation.closed_at, conversation.closed_reason = now, f"closed by {caller.login}"
            conversation.closed_in_window = service_window.is_open(conversation.last_inbound_at, now)
            audit(session, caller.login, "conversation.closed", f"conversation:{conversation.id}")
        return ClosedOut(
            conversation_id=conversation.id,
            closed_at=conversation.closed_at,
            closed_reason=conversation.closed_reason,
        )


@router.post("/conversations/{conversation_id}/reopen", response_model=ClosedOut)
def reopen_conversation(conversation_id: int, caller: Caller) -> ClosedOut:
    """Back into the open queues; reopening an open conversation changes nothing."""
    with session_scope() as session:
        conversation_in_reach(session, caller, conversation_id)
        _, conversation = _locked_with_contact(session, Conversation, conversation_id, "conversation")
        if conversation.closed_at is not None:
            previous = conversation.closed_reason
            conversation.closed_at = conversation.closed_reason = conversation.closed_in_window = None
            audit(
                session,
                caller.login,
                "conversation.reopened",
                f"conversation:{conversation.id}",
                {"closed_reason": previous},
            )
        return ClosedOut(conversation_id=conversation.id, closed_at=None, closed_reason=None)


def _prepared(session: Session, body: dict[str, Any], gateway: str) -> rich_messages.Prepared | None:
    """None for the plain ``{"text": ...}``; else the checked rich message; 422 naming the field."""
    if set(body) == {"text"} and not isinstance(body["text"], dict):
        text = body["text"]
        if not isinstance(text, str) or not 1 <= len(text) <= TEXT_MAX:
            raise HTTPException(422, f"text: a string of 1 to {TEXT_MAX} characters")
        return None
    try:
        return rich_messages.prepare(session, body, gateway)
    except NotSendable as exc:
        raise HTTPException(422, str(exc)) from None


@router.post("/routing-decisions/{decision_id}/override", response_model=DecisionOut)
def override_decision(decision_id: int, body: OverrideIn, caller: Caller) -> DecisionOut:
    """Change who answers a message: a human (this agent, or the next in rotation), automation
    (this FAQ entry's answer is sent) or nobody. A queued automatic reply not yet sent is
    cancelled."""
    actor = caller.login
    with session_scope() as session:
        found = session.get(RoutingDecision, decision_id)
        if found is None:
            raise HTTPException(404, f"no routing decision {decision_id}")
        conversation_in_reach(session, caller, found.conversation_id)
        team = teams.conversation_team(session, found.conversation_id)
        contact, decision = _locked_with_contact(session, RoutingDecision, decision_id, "routing decision")
        before = {"responder": decision.responder, "agent": decision.agent, "state": decision.state}
        decision.state = DECIDED  # a pending AI answer will find it decided and send nothing
        outbox.cancel_queued(
            session,
            OutboundMessage.dedupe_key == f"reply:{decision.message_id}",
            why=f"overridden by {actor}",
        )
        note = f"overridden by {actor}: {body.responder}" + (f" ({body.reason})" if body.reason else "")
        if body.responder == HUMAN:
            if body.agent:
                _agent(session, body.agent, team)
                contact.assigned_agent = decision.agent = body.agent
                session.get_one(Conversation, decision.conversation_id).assigned_agent = body.agent
            else:
                conversation = session.get_one(Conversation, decision.conversation_id)
                decision.agent = assignment.assign(session, contact, conversation).agent
            crm_sync.queue_sync(session, contact.id, "assignment")
        elif body.responder == AUTOMATION:
            entry = session.scalar(select(FaqEntry).where(FaqEntry.key == body.faq_key))
            if entry is None:
                raise HTTPException(422, f"faq_key: no FAQ entry {body.faq_key!r}")
            text, rich = faq_reply(entry)
            outbox.queue(
                session,
                dedupe_key=f"override:{decision.id}",
                trigger=FAQ_ANSWER,
                contact_id=contact.id,
                channel_id=channels.conversation_channel_id(session, decision.conversation_id),
                text=text,
                body=rich,
            )
            decision.faq_key, decision.agent = entry.key, None
        else:
            decision.agent = None
        decision.responder = body.responder if body.responder != "none" else NOBODY
        decision.needs_reply = body.responder != "none"
        decision.reasons = [*decision.reasons, note]
        decision.overridden_by, decision.overridden_at = actor, utcnow()
        audit(
            session,
            actor,
            "routing.overridden",
            f"routing_decision:{decision.id}",
            {"before": before, **body.model_dump(exclude_none=True)},
        )
        return DecisionOut.model_validate(decision, from_attributes=True)


@router.get("/contacts/{contact_id}/routing", response_model=DecisionPage)
def list_decisions(
    contact_id: int, caller: Caller, limit: Limit = 50, cursor: int | None = None
) -> DecisionPage:
    """Routing decisions for a contact's messages, newest first, each with its reasons."""
    with session_scope() as session:
        contact_in_reach(session, caller, contact_id)
        contact = _contact(session, contact_id, lock=False)
        query = (
            select(RoutingDecision)
            .where(RoutingDecision.contact_id == contact.id)
            .order_by(RoutingDecision.id.desc())
            .limit(limit)
        )
        if cursor is not None:
            query = query.where(RoutingDecision.id < cursor)
        rows = session.scalars(query).all()
        items = [DecisionOut.model_validate(row, from_attributes=True) for row in rows]
    return DecisionPage(items=items, next_cursor=str(rows[-1].id) if len(rows) == limit else None)


@router.get("/queue", response_model=DecisionPage)
def human_queue(caller: Caller, agent: str | None = None, limit: Limit = 50) -> DecisionPage:
    """Messages waiting for a person, hot leads first, then by their first-response target;
    only those of the caller's teams."""
    rank = case({"hot": 0, "warm": 1, "cold": 2}, value=RoutingDecision.lead_class, else_=3)
    # Decisions for the messages a customer is still waiting on: from the conversation's oldest
    # unanswered message on (our next reply clears awaiting_reply_since).
    query = (
        select(RoutingDecision)
        .join(Conversation, Conversation.id == RoutingDecision.conversation_id)
        .join(Message, Message.id == RoutingDecision.message_id)
        .where(
            RoutingDecision.responder == HUMAN,
            RoutingDecision.needs_reply,
            Conversation.awaiting_reply_since.is_not(None),
            Message.occurred_at >= Conversation.awaiting_reply_since,
        )
        .order_by(rank, RoutingDecision.respond_by, RoutingDecision.id)
        .limit(limit)
    )
    if agent:
        query = query.where(RoutingDecision.agent == agent)
    with session_scope() as session:
        items = [
            DecisionOut.model_validate(row, from_attributes=True)
            for row in session.scalars(query)
            if _in_teams(session, caller, row.conversation_id)
        ]
    return DecisionPage(items=items, next_cursor=None)


def _in_teams(session: Session, caller: Principal, conversation_id: int) -> bool:
    return caller.teams is None or teams.conversation_team(session, conversation_id) in caller.teams


@router.get("/followup-rules", response_model=RulesOut)
def get_default_rules() -> RulesOut:
    """The adaptive follow-up rules for every contact without rules of their own."""
    with session_scope() as session:
        return _rules_out(session, None)


@router.put("/followup-rules", response_model=RulesOut)
def put_default_rules(body: RulesIn, caller: Caller) -> RulesOut:
    with session_scope() as session:
        _store_rules(session, adaptive_followups.DEFAULT_SCOPE, body, caller.login)
        return _rules_out(session, None)


@router.get("/contacts/{contact_id}/followup-rules", response_model=RulesOut)
def get_contact_rules(contact_id: int, caller: Caller) -> RulesOut:
    """The rules that apply to this contact: their own, else the default ones."""
    with session_scope() as session:
        contact_in_reach(session, caller, contact_id)
        contact = _contact(session, contact_id, lock=False)
        return _rules_out(session, contact.id)


@router.put("/contacts/{contact_id}/followup-rules", response_model=RulesOut)
def put_contact_rules(contact_id: int, body: RulesIn, caller: Caller) -> RulesOut:
    with session_scope() as session:
        contact = _contact(session, contact_id)
        _store_rules(session, adaptive_followups.contact_scope(contact.id), body, caller.login)
        return _rules_out(session, contact.id)


@router.delete("/contacts/{contact_id}/followup-rules", response_model=RulesOut)
def delete_contact_rules(contact_id: int, caller: Caller) -> RulesOut:
    """Back to the default rules for this contact."""
    with session_scope() as session:
        contact = _contact(session, contact_id)
        scope = adaptive_followups.contact_scope(contact.id)
        row = session.scalar(select(FollowupRules).where(FollowupRules.scope == scope))
        if row is not None:
            session.delete(row)
            audit(session, caller.login, "followup_rules.deleted", scope)
        session.flush()
        return _rules_out(session, contact.id)


@router.get("/audit", response_model=AuditPage)
def list_audit(subject: str | None = None, limit: Limit = 100, cursor: int | None = None) -> AuditPage:
    """Every human action, newest first; ``subject`` narrows to one thing, e.g. ``contact:12``."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if subject:
        query = query.where(AuditEntry.subject == subject)
    if cursor is not None:
        query = query.where(AuditEntry.id < cursor)
    with session_scope() as session:
        rows = session.scalars(query).all()
        items = [AuditOut.model_validate(row, from_attributes=True) for row in rows]
    return AuditPage(items=items, next_cursor=str(rows[-1].id) if len(rows) == limit else None)


def audit(
    session: Session, actor: str, action: str, subject: str, details: dict[str, Any] | None = None
) -> None:
    """Record a human action in the caller's transaction (``actor``: the signed-in login)."""
    audit_trail.record(session, actor, action, subject, details)


def _contact(session: Session, contact_id: int, *, lock: bool = True) -> Contact:
    contact = locks.contact(session, contact_id) if lock else current_contact(session, contact_id)
    if contact is None:
        raise HTTPException(404, f"no contact {contact_id}")
    return contact


def _locked_with_contact(session: Session, model: type[T], row_id: int, what: str) -> tuple[Contact, T]:
    """The row and its contact, locked contact first (as everywhere), then the row re-read under
    its own lock: the AI agent or routing may have changed it since it was first read."""
    found = session.get(model, row_id)
    if found is None:
        raise HTTPException(404, f"no {what} {row_id}")
    contact = _contact(session, found.contact_id)  # type: ignore[attr-defined]
    return contact, session.get_one(model, row_id, with_for_update=True, populate_existing=True)


def _agent(session: Session, login: str, team: str) -> Agent:
    agent = session.scalar(select(Agent).where(Agent.login == login))
    if agent is None or not agent.active:
        raise HTTPException(422, f"agent: no agent {login!r}; add one with POST /api/agents")
    if team not in agent.teams:
        raise HTTPException(422, f"agent: {login!r} is not in team {team!r}, this conversation's team")
    return agent


def _cancel_queued(session: Session, contact_id: int, triggers: frozenset[str] | None, why: str) -> int:
    """Cancel this contact's queued automatic messages (all of them, or these triggers)."""
    conditions = [OutboundMessage.contact_id == contact_id, OutboundMessage.trigger != HUMAN_REPLY]
    if triggers is not None:
        conditions.append(OutboundMessage.trigger.in_(triggers))
    return outbox.cancel_queued(session, *conditions, why=why)


def _store_rules(session: Session, scope: str, body: RulesIn, actor: str) -> None:
    bounds = {"min_delay_seconds": body.min_delay_seconds, "max_delay_seconds": body.max_delay_seconds}
    row = locked_row(session, FollowupRules, {"scope": scope}, {**bounds, "max_attempts": body.max_attempts})
    row.enabled, row.max_attempts = body.enabled, body.max_attempts
    row.min_delay_seconds, row.max_delay_seconds = body.min_delay_seconds, body.max_delay_seconds
    row.updated_by, row.updated_at = actor, utcnow()
    audit(session, actor, "followup_rules.changed", scope, body.model_dump())
    session.flush()


def _rules_out(session: Session, contact_id: int | None) -> RulesOut:
    """The rules that apply to this contact (None: to everyone without rules of their own)."""
    return RulesOut.model_validate(adaptive_followups.rules_for(session, contact_id), from_attributes=True)
