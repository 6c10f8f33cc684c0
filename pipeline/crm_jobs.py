"""What each CRM sync job does, from the local data to the CRM calls.

Every job first makes sure of the contact's **partner** (the mapping table, else the CRM's
search by our reference ``wacrm-contact:<id>``, then by phone, else a new one with that
reference, so a retry finds the partner an unrecorded attempt made, phone or not) and finds the
record its work goes on: the **lead** of the contact's open deal when there is one, else the
partner.

- ``lead`` (a new conversation, a label change): an un-converted contact's open deal becomes a
  lead (the CRM's open lead of that partner is reused, never duplicated) with the contact's name,
  phone, tags from the active labels, priority from the lead class, the salesperson from the
  assignment and the source from the ad referral; later runs bring the tags up to date, adding
  and removing only tags that came from labels. A converted contact (a paid order, a won deal)
  gets no new lead.
- ``log``: the messages not posted yet, as one internal note per conversation (up to
  LOG_CHUNK lines each), never one call per message. A cursor in the mapping table says how far
  the log got; the note carries a marker so a retry after an unanswered post finds it.
- ``note``: an order event, as an internal note (once per event).
- ``activity``: a to-do for the salesperson (a delivery follow-up went out).

Each id the CRM hands out is saved at once, in its own transaction, so a retry of a job that
failed half-way finds what the first attempt made. When the failure may have struck after a
write we could not record (an unanswered call, our database, the time limit), the job is
``unconfirmed`` and every write it would make again is looked for first: the partner by its
reference, the lead as the partner's open lead, a note, log or activity by its marker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, exists, func, select
from sqlalchemy.orm import Session

from domain import deal_stages, order_messages
from integrations.crm import (
    ActivityIn,
    Crm,
    LeadIn,
    LeadUpdate,
    LogLine,
    PartnerIn,
    SaleLine,
    SaleOrderIn,
    Target,
)
from models import Channel, Contact, Conversation, CrmRecord, Deal, Message, Order, OrderItem
from models.base import utcnow
from models.campaigns import AD, Touch
from models.contacts import current_contact
from models.conversations import INBOUND
from models.crm import ACTIVITY, ACTIVITY_DONE, LEAD, LOG, NOTE, ORDER
from models.db import dialect_insert, session_scope
from models.labels import active_labels
from pipeline import attribution, deal_stage, teams
from settings import settings

LOG_CHUNK = 100  # lines per post
LOG_POSTS_PER_JOB = 20
# Messages younger than this are left to the next log job: a transaction that wrote an older
# message id may not have committed yet, and the cursor must never step over it.
LOG_SETTLE_SECONDS = 2.0
PARTNER, LEAD_MODEL, LOG_MODEL, SALE_ORDER = "res.partner", "crm.lead", "conversation_log", "sale.order"
ACTIVITY_MODEL = "mail.activity"  # respond-by activities still open: local_key = their marker
CONVERTED_STAGES = ("paid", "shipped", "received")


@dataclass(frozen=True)
class Job:
    """A claimed job, detached from its session: what ``crm_jobs`` needs to run it."""

    id: int
    contact_id: int
    kind: str
    reason: str
    dedupe_key: str | None
    payload: dict[str, Any]
    attempts: int
    unconfirmed: bool  # the last attempt may have reached the CRM: check before writing again


@dataclass
class Local:
    """What the job needs from our database, read in one short transaction."""

    contact_id: int
    name: str | None
    phone: str | None
    referral: dict[str, Any] | None
    labels: list[str]
    priority: str
    salesperson: str | None
    deal_id: int | None
    converted: bool
    partner_id: int | None
    lead_id: int | None
    lead_data: dict[str, Any] = field(default_factory=dict)
    partner_is_new: bool = False  # created by this job: it cannot have a lead yet
    stage: str = deal_stages.NEW  # the deal's milestone (domain/deal_stages.py)
    opted_out: bool = False
    expected_revenue: Decimal | None = None
    team: str | None = None
    # The contact's first campaign touch when it was not an ad (a tracked link, a broadcast):
    # the lead's UTM source, medium and campaign (an ad's come from ``referral``).
    utm: tuple[str | None, str | None, str] | None = None


def run(crm: Crm, job: Job, local: Local | None = None) -> None:
    """Do the job. ``local``: the contact's data read since the job was claimed (``load``),
    shared by the contact's jobs of a round; each job keeps it up to date as it writes."""
    if local is None:
        local = load(crm, job.contact_id)
    if local is None:
        return  # the contact is gone: nothing to sync
    partner_id = _partner(crm, local)
    # Every job brings the lead up to date first (no call when nothing changed): a person's reply
    # (a log job) moves the pipeline as much as a label or an order does.
    lead_id = _lead(crm, local, partner_id) if job.kind in (LEAD, LOG, ORDER) else local.lead_id
    target = Target("lead", lead_id) if lead_id else Target("partner", partner_id)
    if job.kind == ORDER:
        _sync_order(crm, local, partner_id, lead_id, job)
    elif job.kind == LOG:
        _post_log(crm, local, target, job)
    elif job.kind == NOTE:
        marker = job.dedupe_key or f"wacrm-job:{job.id}"
        if not (job.unconfirmed and crm.find_note(target, marker)):
            crm.post_note(target, job.payload["text"], marker)
    elif job.kind == ACTIVITY:
        activity = ActivityIn(
            job.payload["summary"], date.fromisoformat(job.payload["due"]), job.payload["note"]
        )
        marker = job.dedupe_key or f"wacrm-job:{job.id}"
        crm.create_activity(target, activity, marker, job.unconfirmed)
        if job.payload.get("conversation_id"):  # a respond-by activity: closed once answered
            data = {"conversation_id": job.payload["conversation_id"], "kind": target.kind}
            _remember(crm, local.contact_id, ACTIVITY_MODEL, marker, target.id, data=data)
    elif job.kind == ACTIVITY_DONE:
        marker = str(job.payload["marker"])
        with session_scope() as session:
            record = _record(session, crm, ACTIVITY_MODEL, marker)
            data = dict(record.data or {}) if record else {}
            on = Target(data.get("kind", "lead"), record.remote_id) if record else None
        if on is not None:
            crm.finish_activity(on, marker, "Answered on WhatsApp.")
            with session_scope() as session:  # no longer open: nothing left to track
                session.execute(
                    delete(CrmRecord).where(
                        CrmRecord.crm == crm.name,
                        CrmRecord.model == ACTIVITY_MODEL,
                        CrmRecord.local_key == marker,
                    )
                )


def prefetch(crm: Crm, jobs: dict[int, list[Job]], loaded: dict[int, Local | None]) -> None:
    """Before the jobs of several contacts run one by one: the partners none of them has yet
    found or created in one go, and the leads of the partners just created made in one go, so a
    batch of new customers costs a few calls in all rather than four each. The ids are saved as
    soon as each call answers, in one transaction per call; on any failure the jobs simply do it
    one by one (they search first). ``loaded`` gets each contact's data, for its jobs."""
    loaded.update(load_all(crm, list(jobs)))
    new = [local for local in loaded.values() if local is not None and local.partner_id is None]
    if len(new) < 2:
        return
    results = crm.upsert_partners([_partner_in(local) for local in new])
    created = []
    for local, (partner_id, was_created) in zip(new, results, strict=True):
        local.partner_id, local.partner_is_new = partner_id, was_created
        wants_lead = any(job.kind in (LEAD, LOG, ORDER) for job in jobs[local.contact_id])
        if was_created and wants_lead and local.deal_id is not None and not local.converted:
            created.append(local)
    _remember_all(
        crm,
        [
            (local.contact_id, PARTNER, f"contact:{local.contact_id}", local.partner_id or 0, None)
            for local in new
        ],
    )
    lead_ids = crm.create_leads([_lead_in(local, local.partner_id or 0) for local in created])
    for local, lead_id in zip(created, lead_ids, strict=True):
        local.lead_id, local.lead_data = lead_id, _lead_data(local)
    _remember_all(
        crm,
        [
            (local.contact_id, LEAD_MODEL, f"deal:{local.deal_id}", local.lead_id or 0, local.lead_data)
            for local in created
        ],
    )


# --- local data --------------------------------------------------------------------------------


def active_label_names(session: Session, contact_id: int) -> list[str]:
    """The contact's active WhatsApp labels: they become the lead's tags."""
    return active_labels(session, [contact_id]).get(contact_id, [])


# Odoo's priority stars: "0" low, "1" medium, "2" high, "3" very high.
_PRIORITY = {"hot": "3", "warm": "2"}


def lead_priority(session: Session, contact: Contact) -> str:
    """The lead's priority from the contact's lead class (pipeline/routing.py): hot leads get
    three stars, warm two, cold and unscored one."""
    return _PRIORITY.get(contact.lead_class or "", "1")


def odoo_team(session: Session, contact: Contact) -> str | None:
    """The Odoo sales team (crm.team, by name) of the contact's latest conversation: the team of
    the channel it is with (pipeline/teams.py). The one place that decides it here."""
    latest = session.scalar(
        select(Conversation.id)
        .where(Conversation.contact_id == contact.id)
        .order_by(Conversation.last_message_at.desc())
        .limit(1)
    )
    return teams.conversation_team(session, latest) if latest is not None else settings.default_team or None


def expected_revenue(session: Session, contact: Contact) -> Decimal:
    """What the lead is worth: the totals of the contact's orders not cancelled."""
    total = session.scalar(
        select(func.coalesce(func.sum(Order.total), 0)).where(
            Order.contact_id == contact.id, Order.stage != "cancelled"
        )
    )
    return Decimal(total or 0)


def salesperson_login(session: Session, contact: Contact) -> str | None:
    """The agent the contact is assigned to; agent logins are Odoo user logins (an agent
    without an Odoo user leaves the lead unassigned)."""
    return contact.assigned_agent


def load(crm: Crm, contact_id: int) -> Local | None:
    """The contact's data the jobs need (None if the contact is gone), in one transaction."""
    with session_scope() as session:
        contact = current_contact(session, contact_id)
        if contact is None:
            return None
        deal = session.scalars(
            select(Deal).where(Deal.contact_id == contact.id, Deal.status == "open")
        ).first()
        converted = bool(
            session.scalar(
                select(
                    exists().where(Order.contact_id == contact.id, Order.stage.in_(CONVERTED_STAGES))
                    | exists().where(Deal.contact_id == contact.id, Deal.status == "won")
                )
            )
        )
        partner = _record(session, crm, PARTNER, f"contact:{contact.id}")
        lead = _record(session, crm, LEAD_MODEL, f"deal:{deal.id}") if deal else None
        return Local(
            contact_id=contact.id,
            name=contact.name,
            phone=contact.phone_e164,
            referral=contact.referral,
            labels=active_label_names(session, contact.id),
            priority=lead_priority(session, contact),
            salesperson=salesperson_login(session, contact),
            deal_id=deal.id if deal else None,
            converted=converted,
            partner_id=partner.remote_id if partner else None,
            lead_id=lead.remote_id if lead else None,
            lead_data=dict(lead.data or {}) if lead else {},
            stage=deal_stage.follow(session, contact, deal),
            opted_out=contact.opted_out_at is not None,
            expected_revenue=expected_revenue(session, contact),
            team=odoo_team(session, contact),
            utm=_utm(session, contact.id),
        )


def load_all(crm: Crm, contact_ids: list[int]) -> dict[int, Local | None]:
    """``load`` of several contacts (a sync batch) in one transaction and a dozen queries in all,
    rather than a dozen each; the same data. A merged contact is followed one by one."""
    with session_scope() as session:
        found = {c.id: c for c in session.scalars(select(Contact).where(Contact.id.in_(contact_ids)))}
        contacts = [found[c] for c in contact_ids if c in found and found[c].merged_into_id is None]
        ids = [contact.id for contact in contacts]
        deals: dict[int, Deal] = {}
        for deal in session.scalars(
            select(Deal).where(Deal.contact_id.in_(ids), Deal.status == "open").order_by(Deal.id)
        ):
            deals.setdefault(deal.contact_id, deal)
        converted = set(
            session.scalars(
                select(Order.contact_id)
                .where(Order.contact_id.in_(ids), Order.stage.in_(CONVERTED_STAGES))
                .distinct()
            )
        ) | set(
            session.scalars(
                select(Deal.contact_id).where(Deal.contact_id.in_(ids), Deal.status == "won").distinct()
            )
        )
        keys = [f"contact:{c}" for c in ids] + [f"deal:{deal.id}" for deal in deals.values()]
        records = {
            (record.model, record.local_key): record
            for record in session.scalars(
                select(CrmRecord).where(
                    CrmRecord.crm == crm.name,
                    CrmRecord.model.in_((PARTNER, LEAD_MODEL)),
                    CrmRecord.local_key.in_(keys),
                )
            )
        }
        labels = active_labels(session, ids)
        facts = deal_stage.facts_of(session, contacts, labels)
        revenue = dict(
            session.execute(
                select(Order.contact_id, func.coalesce(func.sum(Order.total), 0))
                .where(Order.contact_id.in_(ids), Order.stage != "cancelled")
                .group_by(Order.contact_id)
            ).all()
        )
        teams_of = _teams_of(session, ids)
        utms = _utms_of(session, ids)
        loaded: dict[int, Local | None] = {}
        for contact in contacts:
            deal = deals.get(contact.id)
            partner = records.get((PARTNER, f"contact:{contact.id}"))
            lead = records.get((LEAD_MODEL, f"deal:{deal.id}")) if deal else None
            loaded[contact.id] = Local(
                contact_id=contact.id,
                name=contact.name,
                phone=contact.phone_e164,
                referral=contact.referral,
                labels=labels.get(contact.id, []),
                priority=lead_priority(session, contact),
                salesperson=salesperson_login(session, contact),
                deal_id=deal.id if deal else None,
                converted=contact.id in converted,
                partner_id=partner.remote_id if partner else None,
                lead_id=lead.remote_id if lead else None,
                lead_data=dict(lead.data or {}) if lead else {},
                stage=deal_stage.follow_facts(deal, facts[contact.id]),
                opted_out=contact.opted_out_at is not None,
                expected_revenue=Decimal(revenue.get(contact.id) or 0),
                team=teams_of.get(contact.id, settings.default_team or None),
                utm=utms.get(contact.id),
            )
    for contact_id in contact_ids:
        if contact_id not in loaded:
            loaded[contact_id] = load(crm, contact_id) if contact_id in found else None
    return loaded


def _teams_of(session: Session, contact_ids: list[int]) -> dict[int, str | None]:
    """``odoo_team`` of each contact that has a conversation: its latest one's team."""
    ranked = (
        select(
            Conversation.contact_id,
            Conversation.channel_id,
            func.row_number()
            .over(
                partition_by=Conversation.contact_id,
                order_by=(Conversation.last_message_at.desc(), Conversation.id.desc()),
            )
            .label("n"),
        )
        .where(Conversation.contact_id.in_(contact_ids))
        .subquery()
    )
    rows = session.execute(
        select(ranked.c.contact_id, Channel.team)
        .select_from(ranked)
        .outerjoin(Channel, Channel.id == ranked.c.channel_id)
        .where(ranked.c.n == 1)
    )
    return {contact_id: team or settings.default_team for contact_id, team in rows}


def _utms_of(session: Session, contact_ids: list[int]) -> dict[int, tuple[str | None, str | None, str]]:
    """``_utm`` of each contact whose first touch was a tracked link or a broadcast."""
    ranked = (
        select(
            Touch.contact_id,
            Touch.kind,
            Touch.utm_source,
            Touch.utm_medium,
            Touch.name,
            func.row_number()
            .over(partition_by=Touch.contact_id, order_by=(Touch.occurred_at, Touch.id))
            .label("n"),
        )
        .where(Touch.contact_id.in_(contact_ids))
        .subquery()
    )
    rows = session.execute(select(ranked).where(ranked.c.n == 1))
    return {row.contact_id: (row.utm_source, row.utm_medium, row.name) for row in rows if row.kind != AD}


def _record(session: Session, crm: Crm, model: str, local_key: str) -> CrmRecord | None:
    return session.scalars(
        select(CrmRecord).where(
            CrmRecord.crm == crm.name, CrmRecord.model == model, CrmRecord.local_key == local_key
        )
    ).first()


def _remember(
    crm: Crm,
    contact_id: int,
    model: str,
    local_key: str,
    remote_id: int,
    *,
    cursor: int | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Save (or move) a mapping at once, in its own transaction."""
    with session_scope() as session:
        now = utcnow()
        values: dict[str, Any] = {"remote_id": remote_id, "updated_at": now}
        if cursor is not None:
            values["cursor"] = cursor
        if data is not None:
            values["data"] = data
        insert = dialect_insert(session.get_bind().dialect.name)(CrmRecord).values(
            crm=crm.name, model=model, local_key=local_key, contact_id=contact_id, created_at=now, **values
        )
        session.execute(
            insert.on_conflict_do_update(index_elements=["crm", "model", "local_key"], set_=values)
        )


def _remember_all(crm: Crm, rows: list[tuple[int, str, str, int, dict[str, Any] | None]]) -> None:
    """Save the mappings one batch call handed out (contact, model, local key, remote id, data),
    in one transaction, as soon as it answered."""
    if not rows:
        return
    with session_scope() as session:
        now = utcnow()
        insert = dialect_insert(session.get_bind().dialect.name)(CrmRecord)
        statement = insert.values(
            [
                {
                    "crm": crm.name,
                    "model": model,
                    "local_key": local_key,
                    "contact_id": contact_id,
                    "remote_id": remote_id,
                    "data": data,
                    "created_at": now,
                    "updated_at": now,
                }
                for contact_id, model, local_key, remote_id, data in rows
            ]
        )
        values: dict[str, Any] = {"remote_id": statement.excluded.remote_id, "updated_at": now}
        if any(data is not None for *_, data in rows):
            values["data"] = statement.excluded.data
        session.execute(
            statement.on_conflict_do_update(index_elements=["crm", "model", "local_key"], set_=values)
        )


# --- partner and lead --------------------------------------------------------------------------


def _partner_in(local: Local) -> PartnerIn:
    return PartnerIn(
        name=local.name or local.phone or f"WhatsApp contact {local.contact_id}",
        phone=local.phone,
        ref=partner_ref(local.contact_id),
    )


def _partner(crm: Crm, local: Local) -> int:
    if local.partner_id is None:
        local.partner_id, local.partner_is_new = crm.upsert_partner(_partner_in(local))
        _remember(crm, local.contact_id, PARTNER, f"contact:{local.contact_id}", local.partner_id)
    return local.partner_id


def partner_ref(contact_id: int) -> str:
    """Our reference on the contact's partner: how a retry finds it without a phone."""
    return f"wacrm-contact:{contact_id}"


def _lead(crm: Crm, local: Local, partner_id: int) -> int | None:
    """The open deal's lead, created for an un-converted contact; then kept up to date: label
    tags, priority, salesperson, team, expected revenue and the pipeline stage (won and lost by
    Odoo's actions), writing only what changed since we last wrote it."""
    if local.deal_id is None:
        return None
    key = f"deal:{local.deal_id}"
    stage, outcome, reason = _pipeline(local)
    if local.lead_id is None:
        if local.converted:
            return None
        lead_id, created = crm.find_or_create_lead(_lead_in(local, partner_id))
        if not created:
            crm.update_lead(
                lead_id,
                LeadUpdate(
                    add_tags=local.labels,
                    priority=local.priority,
                    salesperson=local.salesperson,
                    stage=stage,
                    outcome=outcome if outcome in ("won", "lost") else None,
                    lost_reason=reason,
                    team=local.team,
                    expected_revenue=local.expected_revenue,
                ),
            )
        local.lead_id, local.lead_data = lead_id, _lead_data(local)
        _remember(crm, local.contact_id, LEAD_MODEL, key, lead_id, data=local.lead_data)
        return lead_id
    synced = local.lead_data
    add = [tag for tag in local.labels if tag not in (synced.get("tags") or [])]
    remove = [tag for tag in (synced.get("tags") or []) if tag not in local.labels]
    was = synced.get("stage", deal_stages.NEW)
    update = LeadUpdate(
        add_tags=tuple(add),
        remove_tags=tuple(remove),
        priority=local.priority if synced.get("priority") != local.priority else None,
        salesperson=local.salesperson if synced.get("salesperson") != local.salesperson else None,
        team=local.team if synced.get("team") != local.team else None,
        expected_revenue=(
            local.expected_revenue if synced.get("revenue") != _money(local.expected_revenue) else None
        ),
        stage=stage if was != local.stage else None,
        outcome=_transition(was, local.stage),
        lost_reason=reason,
    )
    if update != LeadUpdate(lost_reason=reason):
        crm.update_lead(local.lead_id, update)
        local.lead_data = _lead_data(local)  # what the contact's next job of the round compares with
        _remember(crm, local.contact_id, LEAD_MODEL, key, local.lead_id, data=local.lead_data)
    return local.lead_id


UTM_MEDIUM = "WhatsApp"  # utm.medium of every lead that came from an ad or a tracked link


def _lead_in(local: Local, partner_id: int) -> LeadIn:
    stage, outcome, reason = _pipeline(local)
    lead = LeadIn(
        title=f"WhatsApp: {local.name or local.phone or 'unknown'}",
        partner_id=partner_id,
        contact_name=local.name,
        phone=local.phone,
        tags=local.labels,
        priority=local.priority,
        salesperson=local.salesperson,
        source=_source_name(local.referral),
        description=_referral_text(local.referral),
        partner_is_new=local.partner_is_new,
        stage=stage,
        outcome="won" if outcome == "won" else "lost" if outcome == "lost" else None,
        lost_reason=reason,
        team=local.team,
        medium=UTM_MEDIUM if local.referral else None,
        campaign=_campaign_name(local.referral),
        expected_revenue=local.expected_revenue or None,
    )
    if not local.referral and local.utm is not None:
        source, medium, campaign = local.utm
        lead = replace(lead, source=source, medium=medium, campaign=campaign[:200])
    return lead


def _utm(session: Session, contact_id: int) -> tuple[str | None, str | None, str] | None:
    """The UTM fields of the contact's first touch, if it was a tracked link or a broadcast."""
    touch = attribution.first_touch(session, contact_id)
    if touch is None or touch.kind == AD:
        return None
    return touch.utm_source, touch.utm_medium, touch.name


def _pipeline(local: Local) -> tuple[str | None, str | None, str | None]:
    """The Odoo stage name of the deal's milestone (CRM_STAGE_MAP), its outcome (won, lost) and
    the lost reason."""
    if local.stage == deal_stages.WON:
        return None, "won", None
    if local.stage == deal_stages.LOST:
        reason = settings.crm_lost_reason_opted_out if local.opted_out else settings.crm_lost_reason_cancelled
        return None, "lost", reason
    return deal_stages.parse_stage_map(settings.crm_stage_map).get(local.stage), None, None


def _transition(was: str, now: str) -> str | None:
    """The action a move of the milestone needs in Odoo: win, lose, or restore a lost lead."""
    if was == now:
        return None
    if now in (deal_stages.WON, deal_stages.LOST):
        return now
    return "open" if was == deal_stages.LOST else None


def _money(amount: Decimal | None) -> str | None:
    return None if amount is None else str(amount.quantize(Decimal("0.01")))


def _lead_data(local: Local) -> dict[str, Any]:
    """What we last wrote to the lead, to write only what changed next time."""
    return {
        "tags": local.labels,
        "priority": local.priority,
        "salesperson": local.salesperson,
        "stage": local.stage,
        "team": local.team,
        "revenue": _money(local.expected_revenue),
    }


def _campaign_name(referral: dict[str, Any] | None) -> str | None:
    """The utm.campaign of an ad's lead: the ad's headline (what the shop named it)."""
    if not referral or not referral.get("headline"):
        return None
    return str(referral["headline"])[:200]


def _source_name(referral: dict[str, Any] | None) -> str | None:
    """The CRM source of a click-to-WhatsApp lead: one per ad, stable across its headlines."""
    if not referral:
        return None
    return f"WhatsApp {referral.get('source_type') or 'ad'} {referral.get('source_id') or '?'}"


def _referral_text(referral: dict[str, Any] | None) -> str | None:
    if not referral:
        return None
    parts = [f"Came from a WhatsApp {referral.get('source_type') or 'ad'}"]
    if referral.get("headline"):
        parts.append(f"“{referral['headline']}”")
    if referral.get("source_url"):
        parts.append(f"({referral['source_url']})")
    return " ".join(parts)


# --- the conversation log ----------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    conversation_started: Any
    first_id: int
    last_id: int
    lines: list[LogLine]
    last: bool = False  # nothing else was settled when it was read: no need to look again


def _post_log(crm: Crm, local: Local, target: Target, job: Job) -> None:
    check = job.unconfirmed
    for _ in range(LOG_POSTS_PER_JOB):
        chunk = _unposted(crm, local)
        if chunk is None:
            return
        prefix = f"wacrm-log:{local.contact_id}:{chunk.first_id}-"
        if check:
            check = False
            body = crm.find_note(target, prefix)
            found = re.search(re.escape(prefix) + r"(\d+)", body or "")
            if found:  # the unanswered post did land: go on after it
                _remember(
                    crm,
                    local.contact_id,
                    LOG_MODEL,
                    f"contact:{local.contact_id}",
                    target.id,
                    cursor=int(found.group(1)),
                )
                continue
        started = chunk.conversation_started.astimezone(ZoneInfo(settings.timezone))
        heading = f"WhatsApp conversation started {started:%Y-%m-%d %H:%M}"
        crm.post_log(target, heading, chunk.lines, f"{prefix}{chunk.last_id}")
        _remember(
            crm, local.contact_id, LOG_MODEL, f"contact:{local.contact_id}", target.id, cursor=chunk.last_id
        )
        if chunk.last:
            return


def _unposted(crm: Crm, local: Local) -> Chunk | None:
    """The oldest messages not posted yet, from one conversation, up to LOG_CHUNK."""
    with session_scope() as session:
        record = _record(session, crm, LOG_MODEL, f"contact:{local.contact_id}")
        cursor = record.cursor if record else None
        if cursor is None:
            # The first log of this contact starts with its latest conversation, not its history.
            latest = (
                select(Conversation.id)
                .where(Conversation.contact_id == local.contact_id)
                .order_by(Conversation.last_message_at.desc())
                .limit(1)
                .scalar_subquery()
            )
            first = session.scalar(select(func.min(Message.id)).where(Message.conversation_id == latest))
            cursor = (first or 1) - 1
        settled = utcnow() - timedelta(seconds=LOG_SETTLE_SECONDS)
        rows = session.scalars(
            select(Message)
            .where(Message.contact_id == local.contact_id, Message.id > cursor, Message.created_at <= settled)
            .order_by(Message.id)
            .limit(LOG_CHUNK)
        ).all()
        if not rows:
            return None
        conversation_id = rows[0].conversation_id
        settled_rows = rows
        rows = [row for row in rows if row.conversation_id == conversation_id]
        last = len(settled_rows) < LOG_CHUNK and len(rows) == len(settled_rows)
        conversation = session.get_one(Conversation, conversation_id)
        timezone = ZoneInfo(settings.timezone)
        customer = local.name or local.phone or "Customer"
        lines = [
            LogLine(
                at=row.occurred_at.astimezone(timezone),
                author=customer if row.direction == INBOUND else settings.business_name,
                text=row.text or f"[{row.raw_type or row.type}]",
            )
            for row in rows
        ]
        return Chunk(conversation.started_at, rows[0].id, rows[-1].id, lines, last)


# --- sale orders -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalOrder:
    id: int
    external_id: str
    cancelled: bool
    total: Any
    currency: str | None
    lines: list[SaleLine]
    sale_order_id: int | None
    state: str | None  # the sale order's state as we last left it
    data: dict[str, Any]


def _load_order(crm: Crm, order_id: int) -> LocalOrder | None:
    with session_scope() as session:
        order = session.get(Order, order_id)
        if order is None:
            return None
        items = session.scalars(
            select(OrderItem).where(OrderItem.order_id == order.id).order_by(OrderItem.position)
        ).all()
        record = _record(session, crm, SALE_ORDER, f"order:{order.id}")
        return LocalOrder(
            id=order.id,
            external_id=order.external_id,
            cancelled=order.stage == "cancelled",
            total=order.total,
            currency=order.currency,
            lines=[SaleLine(item.name, item.qty, item.price, item.sku) for item in items],
            sale_order_id=record.remote_id if record else None,
            state=(record.data or {}).get("state") if record else None,
            data=dict(record.data or {}) if record else {},
        )


def _sync_order(crm: Crm, local: Local, partner_id: int, lead_id: int | None, job: Job) -> None:
    """The order's sale order: created once (keyed by the order's id), confirmed, or cancelled
    once the order is; then the event's note in its chatter (payment, shipment and tracking
    number included)."""
    order = _load_order(crm, int(job.payload["order_id"]))
    if order is None:
        return
    key = f"order:{order.id}"
    sale_order_id, state, check_state = order.sale_order_id, order.state, job.unconfirmed
    if sale_order_id is None and job.payload.get("odoo_sale_order_id"):
        # Odoo is this order's system: the order is its sale order, confirmed there.
        sale_order_id, state = int(job.payload["odoo_sale_order_id"]), "sale"
        _remember(
            crm, local.contact_id, SALE_ORDER, key, sale_order_id, data={"state": state, "source": "odoo"}
        )
    if sale_order_id is None:
        sale_order_id, state = crm.upsert_sale_order(
            SaleOrderIn(
                key=order.external_id,
                partner_id=partner_id,
                lead_id=lead_id,
                lines=order.lines,
                total=order.total,
                currency=order.currency,
                origin=f"WhatsApp {local.phone or local.contact_id}",
            ),
            job.unconfirmed,
        )
        _remember(crm, local.contact_id, SALE_ORDER, key, sale_order_id, data={"state": state})
        check_state = False  # just read or made: its state is known
    wanted = "cancel" if order.cancelled else "sale"
    if state != wanted:
        state = crm.set_sale_order_state(sale_order_id, wanted, check_state)
        _remember(crm, local.contact_id, SALE_ORDER, key, sale_order_id, data={**order.data, "state": state})
    target = Target("sale_order", sale_order_id)
    marker = job.dedupe_key or f"wacrm-job:{job.id}"
    if not (job.unconfirmed and crm.find_note(target, marker)):
        crm.post_note(target, job.payload["text"], marker)


# --- order notes -------------------------------------------------------------------------------


def order_note(order: Order, event_type: str) -> str:
    """The note an order event leaves on the lead, from the order as the event left it."""
    what = {
        "order.created": "created",
        "order.updated": "updated",
        "order.paid": "paid",
        "order.shipped": "shipped",
        "order.received": "received by the customer",
        "order.cancelled": "cancelled",
    }.get(event_type, event_type)
    parts = [f"Order {order.external_id} {what}."]
    if order.total is not None:
        parts.append(f"Total {order_messages.format_total(order.total, order.currency)}.")
    if event_type == "order.shipped" and order.tracking_number:
        parts.append(f"Courier {order.courier or '-'}, tracking number {order.tracking_number}.")
    if order.estimated_delivery_date and event_type in ("order.created", "order.updated", "order.shipped"):
        parts.append(f"Estimated delivery {order.estimated_delivery_date.isoformat()}.")
    return " ".join(parts)
