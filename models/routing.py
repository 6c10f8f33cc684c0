"""The automation brain's tables: who may answer (agents), what automation knows (FAQ entries),
what was decided for each inbound message and why, adaptive follow-ups, satisfaction answers,
and the audit trail of every human intervention."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy import text as sql
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, JSONType, utcnow
from models.types import BigId

# A decision is "decided" at once, or "ai_pending" until the AI agent answered or handed over.
DECIDED, AI_PENDING = "decided", "ai_pending"

# Adaptive follow-ups: pending until beat fires them (queued) or finds a reason not to.
PENDING, QUEUED, CANCELLED = "pending", "queued", "cancelled"
HELD_OUT = "held_out"  # due and allowed, kept back on purpose: the silence it is compared with


# An account's role: what it may do (api/permissions.py has the table).
ADMIN, SUPERVISOR, AGENT = "admin", "supervisor", "agent"
ROLES = (ADMIN, SUPERVISOR, AGENT)


class Agent(Base):
    """An account: a person who signs in (role, password hash, active) and, as an agent, can be
    assigned the conversations of their teams (availability, round robin)."""

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=AGENT)
    # argon2id (argon2-cffi's PasswordHasher); None: the account cannot sign in with a password.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    # False: deleted or disabled; never signs in, never assigned, kept for the audit trail.
    active: Mapped[bool] = mapped_column(default=True)
    available: Mapped[bool] = mapped_column(default=True)
    # The language of the /inbox pages for this account ("id", "en"); None: the default (Indonesian).
    language: Mapped[str | None] = mapped_column(String(8))
    # Round robin: the available agent assigned longest ago is next.
    last_assigned_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    memberships: Mapped[list[AgentTeam]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="AgentTeam.team"
    )

    @property
    def teams(self) -> list[str]:
        return [m.team for m in self.memberships]


class AgentTeam(Base):
    """An agent is a member of a team (of several, maybe): the conversations they see and take."""

    __tablename__ = "agent_teams"

    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True)
    team: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class FaqEntry(Base):
    """An answer automation may give: an FAQ or a piece of marketing material."""

    __tablename__ = "faq_entries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="faq")  # faq | marketing
    questions: Mapped[list[str]] = mapped_column(JSONType)  # variants, Indonesian and English
    answer: Mapped[str] = mapped_column(Text)
    media_url: Mapped[str | None] = mapped_column(String(1000))
    media_type: Mapped[str | None] = mapped_column(String(16))  # image | document | link
    active: Mapped[bool] = mapped_column(default=True)
    updated_by: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class RoutingDecision(Base):
    """What happens after one inbound message, and every reason for it. One per message."""

    __tablename__ = "routing_decisions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), unique=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    needs_reply: Mapped[bool]
    responder: Mapped[str] = mapped_column(String(16))
    agent: Mapped[str | None] = mapped_column(String(64))
    lead_class: Mapped[str | None] = mapped_column(String(8))
    lead_score: Mapped[int | None]
    # What scored the lead: "fixed weights" or "model <id>" (pipeline/lead_model.py).
    scored_by: Mapped[str | None] = mapped_column(String(32))
    faq_key: Mapped[str | None] = mapped_column(String(100))
    out_of_hours: Mapped[bool] = mapped_column(default=False)
    # The first-response target: a human should have answered by then.
    respond_by: Mapped[datetime | None]
    reasons: Mapped[list[str]] = mapped_column(JSONType)
    state: Mapped[str] = mapped_column(String(16), default=DECIDED)
    # When the AI agent's task was last published (the sweeper republishes a lost one, once per
    # grace period, not on every tick).
    published_at: Mapped[datetime | None]
    overridden_by: Mapped[str | None] = mapped_column(String(64))
    overridden_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index(
            "ix_routing_decisions_ai_pending",
            "created_at",
            postgresql_where=sql("state = 'ai_pending'"),
            sqlite_where=sql("state = 'ai_pending'"),
        ),
    )


class FollowupRules(Base):
    """How adaptive follow-ups behave: one row for everyone ("default"), or one per contact."""

    __tablename__ = "followup_rules"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    scope: Mapped[str] = mapped_column(String(32), unique=True)  # "default" | "contact:<id>"
    enabled: Mapped[bool] = mapped_column(default=True)
    min_delay_seconds: Mapped[float]
    max_delay_seconds: Mapped[float]
    max_attempts: Mapped[int]
    updated_by: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AdaptiveFollowup(Base):
    """A nudge due when the customer stays silent after a question of ours."""

    __tablename__ = "adaptive_followups"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    # Our message that asked something, and when it went out.
    after_message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"), unique=True)
    asked_at: Mapped[datetime]
    attempt: Mapped[int]
    due_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(16), default=PENDING)
    reason: Mapped[str | None] = mapped_column(String(255))
    outbound_id: Mapped[int | None] = mapped_column(ForeignKey("outbound_messages.id"))
    rules_scope: Mapped[str | None] = mapped_column(String(32))  # the rules that scheduled it
    # Its effect: the customer wrote, or ordered, within FOLLOWUP_EFFECT_HOURS / _ORDER_DAYS of
    # its due time (sent, or held out for comparison).
    answered_at: Mapped[datetime | None]
    ordered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index(
            "ix_adaptive_followups_due",
            "due_at",
            postgresql_where=sql("state = 'pending'"),
            sqlite_where=sql("state = 'pending'"),
        ),
    )


class SurveyResponse(Base):
    """A customer's answer to the satisfaction survey at the close of a conversation."""

    __tablename__ = "survey_responses"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), unique=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id"))
    rating: Mapped[int]
    text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """Who did what, when: every human action through the control API."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(48))
    subject: Mapped[str] = mapped_column(String(255), index=True)  # e.g. "conversation:12"
    details: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
