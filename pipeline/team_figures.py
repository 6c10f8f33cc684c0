"""The team's figures for a period: per agent, per channel and per responder type.

A conversation belongs to the period it started in, and to the agent who owns it (took it
over) or, failing that, the agent routing assigned it to. Its first response is "within target"
when it came no later than the target of the lead class its first routing decision gave
(``pipeline.routing.response_target``). Workload and availability are "now", not of the period.

Only reads; every figure is a few grouped queries, so the page stays fast on a big history.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import (
    Agent,
    AgentTeam,
    Channel,
    Conversation,
    LabelChange,
    Message,
    OutboundMessage,
    RoutingDecision,
    SurveyResponse,
)
from models.channels import SETTINGS_CHANNEL
from models.conversations import OUTBOUND
from models.labels import ADDED, label_ids_named
from models.outbox import SENT
from pipeline.routing import response_target
from pipeline.teams import conversations_of_teams

HUMAN = "human"


@dataclass
class Row:
    """One agent's, channel's or responder type's figures."""

    key: str
    conversations: int = 0
    closed: int = 0
    closed_in_window: int = 0
    first_response_median_seconds: float | None = None
    first_response_p90_seconds: float | None = None
    within_target_share: float | None = None
    messages_sent: int = 0
    survey_answers: int = 0
    survey_average: float | None = None
    labels_given: int = 0
    labelled_contacts: int = 0
    reached_target_share: float | None = None
    open_now: int | None = None  # agents only: conversations assigned and not closed
    available: bool | None = None  # agents only
    _times: list[tuple[float, bool]] = field(default_factory=list, repr=False)
    _ratings: list[int] = field(default_factory=list, repr=False)

    def finish(self) -> Row:
        if self._times:
            seconds = sorted(t for t, _ in self._times)
            self.first_response_median_seconds = statistics.median(seconds)
            self.first_response_p90_seconds = _percentile(seconds, 0.9)
            self.within_target_share = sum(ok for _, ok in self._times) / len(self._times)
        if self._ratings:
            self.survey_answers = len(self._ratings)
            self.survey_average = statistics.fmean(self._ratings)
        return self


@dataclass(frozen=True)
class TeamFigures:
    since: datetime
    until: datetime
    target_label: str
    agents: list[Row]
    channels: list[Row]
    responders: list[Row]


def team_figures(
    session: Session, since: datetime, until: datetime, target_label: str, teams: Iterable[str] | None = None
) -> TeamFigures:
    """Figures of the conversations started in [since, until). ``teams`` limits them to those
    teams' numbers and the agents to their members (None: everything)."""
    agents: dict[str, Row] = {}
    channels: dict[str, Row] = {}
    responders: dict[str, Row] = {}
    names = dict(session.execute(select(Channel.id, Channel.name)).all())
    first_class = _first_lead_class(since, until)
    owner = func.coalesce(Conversation.owner_agent, Conversation.assigned_agent)
    rows = (
        select(
            Conversation.id,
            owner,
            Conversation.channel_id,
            Conversation.closed_at,
            Conversation.closed_in_window,
            Conversation.first_responder,
            Conversation.first_response_seconds,
            first_class.c.lead_class,
        )
        .outerjoin(first_class, first_class.c.conversation_id == Conversation.id)
        .where(Conversation.started_at >= since, Conversation.started_at < until)
    )
    if teams is not None:
        rows = rows.where(Conversation.id.in_(conversations_of_teams(list(teams))))
    agent_of: dict[int, str] = {}
    for cid, agent, channel_id, closed_at, in_window, responder, seconds, lead_class in session.execute(rows):
        channel = names.get(channel_id, SETTINGS_CHANNEL)
        groups = [channels.setdefault(channel, Row(channel))]
        if agent:
            agent_of[cid] = agent
            groups.append(agents.setdefault(agent, Row(agent)))
        if responder:
            groups.append(responders.setdefault(responder, Row(responder)))
        for row in groups:
            row.conversations += 1
            row.closed += closed_at is not None
            row.closed_in_window += bool(in_window)
            # An agent's response time is theirs only when a human gave the first answer.
            if seconds is not None and (row is not agents.get(agent) or responder == HUMAN):
                ok = seconds <= response_target(lead_class).total_seconds()
                row._times.append((seconds, ok))
    _add_ratings(session, since, until, agent_of, agents)
    _add_sent(session, since, until, names, channels, only_known=teams is not None)
    _add_agent_messages(session, since, until, agents)
    _add_labels(session, since, until, target_label, agents)
    _add_workload(session, agents, teams)
    return TeamFigures(
        since=since,
        until=until,
        target_label=target_label,
        agents=sorted((r.finish() for r in agents.values()), key=lambda r: (-r.conversations, r.key)),
        channels=sorted((r.finish() for r in channels.values()), key=lambda r: (-r.conversations, r.key)),
        responders=sorted((r.finish() for r in responders.values()), key=lambda r: r.key),
    )


def _first_lead_class(since: datetime, until: datetime):  # type: ignore[no-untyped-def]
    """Per conversation of the period, the lead class of its first decision that needed a reply."""
    first = (
        select(RoutingDecision.conversation_id, func.min(RoutingDecision.id).label("id"))
        .where(RoutingDecision.needs_reply.is_(True), RoutingDecision.created_at >= since)
        .group_by(RoutingDecision.conversation_id)
        .subquery()
    )
    return (
        select(RoutingDecision.conversation_id, RoutingDecision.lead_class)
        .join(first, first.c.id == RoutingDecision.id)
        .subquery()
    )


def _add_ratings(
    session: Session, since: datetime, until: datetime, agent_of: dict[int, str], agents: dict[str, Row]
) -> None:
    for cid, rating in session.execute(
        select(SurveyResponse.conversation_id, SurveyResponse.rating)
        .join(Conversation, Conversation.id == SurveyResponse.conversation_id)
        .where(Conversation.started_at >= since, Conversation.started_at < until)
    ):
        if cid in agent_of:
            agents[agent_of[cid]]._ratings.append(rating)


def _add_sent(
    session: Session,
    since: datetime,
    until: datetime,
    names: dict[int, str],
    channels: dict[str, Row],
    only_known: bool,
) -> None:
    """Messages sent in the period, per channel (every sender); ``only_known``: only to the
    channels already listed (those of the caller's teams)."""
    for channel_id, count in session.execute(
        select(OutboundMessage.channel_id, func.count(OutboundMessage.id))
        .where(
            OutboundMessage.state == SENT, OutboundMessage.sent_at >= since, OutboundMessage.sent_at < until
        )
        .group_by(OutboundMessage.channel_id)
    ):
        name = names.get(channel_id, SETTINGS_CHANNEL)
        if name in channels or not only_known:
            channels.setdefault(name, Row(name)).messages_sent += count


def _add_agent_messages(session: Session, since: datetime, until: datetime, agents: dict[str, Row]) -> None:
    """Messages each agent sent in the period: from the inbox or the API, or typed on a phone that
    maps to them (the message's sender)."""
    for agent, count in session.execute(
        select(Message.sender_agent, func.count(Message.id))
        .where(
            Message.direction == OUTBOUND,
            Message.sender_agent.is_not(None),
            Message.occurred_at >= since,
            Message.occurred_at < until,
        )
        .group_by(Message.sender_agent)
    ):
        agents.setdefault(agent, Row(agent)).messages_sent = count


def _add_labels(
    session: Session, since: datetime, until: datetime, target_label: str, agents: dict[str, Row]
) -> None:
    """Labels given in the period by each agent (the label event's staff is their login), and the
    share of the contacts they labelled that were ever given the target label."""
    reached = (
        select(LabelChange.contact_id)
        .where(LabelChange.action == ADDED, LabelChange.label_id.in_(label_ids_named(target_label)))
        .distinct()
    )
    for staff, given, contacts, hits in session.execute(
        select(
            LabelChange.staff,
            func.count(),
            func.count(func.distinct(LabelChange.contact_id)),
            func.count(func.distinct(LabelChange.contact_id)).filter(LabelChange.contact_id.in_(reached)),
        )
        .where(
            LabelChange.action == ADDED,
            LabelChange.staff.is_not(None),
            LabelChange.occurred_at >= since,
            LabelChange.occurred_at < until,
        )
        .group_by(LabelChange.staff)
    ):
        row = agents.setdefault(staff, Row(staff))
        row.labels_given, row.labelled_contacts = given, contacts
        row.reached_target_share = hits / contacts if contacts else None


def _add_workload(session: Session, agents: dict[str, Row], teams: Iterable[str] | None) -> None:
    """Every active agent is listed, with the conversations open on them now."""
    query = select(Agent.login, Agent.available).where(Agent.active.is_(True))
    if teams is not None:
        query = query.where(Agent.id.in_(select(AgentTeam.agent_id).where(AgentTeam.team.in_(list(teams)))))
    members = dict(session.execute(query).all())
    open_now: dict[str, int] = defaultdict(int)
    owner = func.coalesce(Conversation.owner_agent, Conversation.assigned_agent)
    for agent, count in session.execute(
        select(owner, func.count(Conversation.id))
        .where(Conversation.closed_at.is_(None), owner.in_(list(members)))
        .group_by(owner)
    ):
        open_now[agent] = count
    for login, available in members.items():
        row = agents.setdefault(login, Row(login))
        row.open_now, row.available = open_now[login], available
    if teams is not None:
        for login in [k for k in agents if k not in members]:
            del agents[login]


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (p90 of 10 values is the 9th)."""
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]
