"""What the conversation page shows, gathered through the API's own functions (so the team
rule, the 404 outside the caller's teams and the output shapes are the API's)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fastapi import HTTPException
from sqlalchemy import func, select

from api import contacts as contacts_api
from api import control as control_api
from api import notes as notes_api
from api import orders as orders_api
from api import templates as templates_api
from api.auth import Principal
from api.permissions import conversation_in_reach
from domain import service_window
from models import (
    Agent,
    AgentTeam,
    Conversation,
    FaqEntry,
    FlowAnswer,
    Message,
    OutboundMessage,
    SurveyResponse,
)
from models.base import utcnow
from models.db import session_scope
from pipeline import label_edits, teams
from pipeline.teams import conversations_of_teams
from settings import settings

THREAD_SIZE = 200  # the newest messages shown; the API pages through the rest
ORDERS_SHOWN = 5
DECISIONS_SHOWN = 10


@dataclass
class ConversationView:
    conversation: dict[str, Any]
    contact: dict[str, Any]
    team: str
    window_open: bool
    window_closes_at: datetime | None
    messages: list[dict[str, Any]]
    quoted: dict[str, dict[str, Any]]  # the messages replied to, by external id
    outbox_seen: int  # the newest outbox row of the contact when the page was drawn
    agents: list[str] = field(default_factory=list)  # who may be assigned (the team's)
    notes: list[dict[str, Any]] = field(default_factory=list)
    faq: list[dict[str, Any]] = field(default_factory=list)
    templates: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    flow_answers: list[dict[str, Any]] = field(default_factory=list)
    surveys: list[dict[str, Any]] = field(default_factory=list)
    odoo_links: dict[str, Any] = field(default_factory=dict)
    known_labels: list[str] = field(default_factory=list)  # offered when adding a label


def load(principal: Principal, conversation_id: int, *, panel: bool = True) -> ConversationView:
    with session_scope() as session:
        conversation_in_reach(session, principal, conversation_id)
        found = session.get(Conversation, conversation_id)
        if found is None:
            raise HTTPException(404, f"no conversation {conversation_id}")
        contact_id, team = found.contact_id, teams.conversation_team(session, conversation_id)
        cursor = _thread_cursor(session, principal, contact_id)
        outbox_seen = session.scalar(
            select(func.coalesce(func.max(OutboundMessage.id), 0)).where(
                OutboundMessage.contact_id == contact_id
            )
        )
        agents = list(
            session.scalars(
                select(Agent.login)
                .join(AgentTeam, AgentTeam.agent_id == Agent.id)
                .where(AgentTeam.team == team, Agent.active)
                .order_by(Agent.login)
            )
        )
        faq = [
            {"key": e.key, "answer": e.answer}
            for e in session.scalars(select(FaqEntry).where(FaqEntry.active).order_by(FaqEntry.key))
        ]
        flow_answers = [
            {"flow": a.flow, "screen": a.screen, "answers": a.answers, "at": a.updated_at}
            for a in session.scalars(
                select(FlowAnswer)
                .where(FlowAnswer.contact_id == contact_id)
                .order_by(FlowAnswer.id.desc())
                .limit(10)
            )
        ]
        surveys = [
            {"rating": s.rating, "text": s.text, "at": s.created_at}
            for s in session.scalars(
                select(SurveyResponse)
                .where(SurveyResponse.contact_id == contact_id)
                .order_by(SurveyResponse.id)
            )
        ]
    detail = contacts_api.get_contact(contact_id, principal).model_dump()
    conversation = next(c for c in detail["conversations"] if c["id"] == conversation_id)
    messages = [
        m.model_dump() for m in contacts_api.list_messages(contact_id, principal, THREAD_SIZE, cursor).items
    ]
    by_external = {m["external_id"]: m for m in messages if m["external_id"]}
    quoted = {m["reply_to"]: by_external[m["reply_to"]] for m in messages if m.get("reply_to") in by_external}
    now = utcnow()
    last_inbound = conversation["last_inbound_at"]
    view = ConversationView(
        conversation=conversation,
        contact=detail,
        team=team,
        window_open=service_window.is_open(last_inbound, now),
        window_closes_at=service_window.closes_at(last_inbound) if last_inbound else None,
        messages=messages,
        quoted=quoted,
        outbox_seen=outbox_seen or 0,
        agents=agents,
        faq=faq,
        flow_answers=flow_answers,
        surveys=surveys,
    )
    view.notes = [n.model_dump() for n in notes_api.list_notes(conversation_id, principal)]
    if panel:
        _panel(principal, view)
    return view


def _panel(principal: Principal, view: ConversationView) -> None:
    view.templates = [t.model_dump() for t in templates_api.list_templates() if t.status == "APPROVED"]
    with session_scope() as session:
        view.known_labels = label_edits.known_names(session)
    for summary in view.contact["orders"][:ORDERS_SHOWN]:
        try:
            view.orders.append(orders_api.get_order(summary["order_id"], principal).model_dump())
        except HTTPException:
            view.orders.append({**summary, "messages": []})
    view.decisions = [
        d.model_dump()
        for d in control_api.list_decisions(view.contact["id"], principal, DECISIONS_SHOWN).items
    ]
    crm = view.contact["crm"]
    base = (settings.odoo_url or "").rstrip("/")
    if base:
        view.odoo_links = {
            "partner": f"{base}/odoo/contacts/{crm['partner_id']}" if crm["partner_id"] else None,
            "leads": [(lead, f"{base}/odoo/crm/{lead}") for lead in crm["lead_ids"]],
        }


def _thread_cursor(session: Any, principal: Principal, contact_id: int) -> str | None:
    """The API's cursor that starts its (oldest-first) page at the newest THREAD_SIZE messages."""
    query = select(Message.occurred_at, Message.id).where(Message.contact_id == contact_id)
    if principal.teams is not None:
        query = query.where(Message.conversation_id.in_(conversations_of_teams(principal.teams)))
    before = session.execute(
        query.order_by(Message.occurred_at.desc(), Message.id.desc()).offset(THREAD_SIZE).limit(1)
    ).first()
    return f"{before.occurred_at.isoformat()}|{before.id}" if before else None


def remaining(until: datetime | None) -> timedelta | None:
    return None if until is None else until - utcnow()
