"""Back from Odoo: a salesperson or a stage changed in Odoo is taken over here (beat's read-back
by ``write_date``), audited as done in Odoo, and never written back (no ping-pong)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from models import Contact, Deal
from models.db import session_scope
from models.routing import AuditEntry
from pipeline import crm_sync
from tests.system.test_crm_sync import contact_id, customer_writes, leads_of, partners, settled, unique_phone

pytestmark = pytest.mark.usefixtures("worker")


def poll() -> int:
    from workers.crm import poll_odoo

    return poll_odoo()


def odoo_audit(subject: str) -> list[AuditEntry]:
    with session_scope() as session:
        rows = list(
            session.scalars(
                select(AuditEntry)
                .where(AuditEntry.actor == "odoo", AuditEntry.subject == subject)
                .order_by(AuditEntry.id)
            )
        )
        session.expunge_all()
        return rows


def test_a_salesperson_and_a_stage_changed_in_odoo_come_back_once_and_are_not_echoed(
    client, admin_headers, odoo_version
):
    odoo = odoo_version  # once as each of Odoo 17, 18 (JSON-RPC) and 19 (JSON-2)
    wa_id, phone = unique_phone()
    customer_writes(client, wa_id, "Joko", "Halo kak")
    settled()
    login = f"sinta-{wa_id}"  # an agent who joins after the chat was routed
    assert (
        client.put(f"/api/agents/{login}", json={"team": "sales"}, headers=admin_headers).status_code == 200
    )
    sinta = odoo.add("res.users", name="Sinta", login=login)
    poll()  # what there is now: nothing changed in Odoo yet
    [partner] = partners(odoo, phone)
    [lead] = leads_of(odoo, partner["id"])
    me = contact_id(phone)
    assert odoo_audit(f"contact:{me}") == []

    proposition = next(s["id"] for s in odoo.records("crm.stage") if s["name"] == "Proposition")
    odoo.edit("crm.lead", lead["id"], user_id=sinta, stage_id=proposition)  # a person, in Odoo's UI
    assert poll() == 1
    assert poll() == 0  # read again, nothing new
    with session_scope() as session:
        contact = session.get_one(Contact, me)
        deal = session.scalars(select(Deal).where(Deal.contact_id == me)).one()
        assert (contact.assigned_agent, deal.stage) == (login, "ordered")
    [assigned] = odoo_audit(f"contact:{me}")
    assert assigned.action == "contact.assigned" and assigned.details["agent"] == login
    [staged] = odoo_audit(f"deal:{deal.id}")
    assert staged.details["stage"] == "ordered" and staged.details["previous"] == "new"

    writes = len(odoo.writes)
    with session_scope() as session:  # anything that syncs the lead again
        crm_sync.queue_sync(session, me, "labels")
    customer_writes(client, wa_id, "Joko", "Oke kak")
    settled()
    # Nothing written back: what came from Odoo is what we last wrote.
    written = [values for model, ids, values in odoo.writes[writes:] if ids == [lead["id"]]]
    assert not [values for values in written if {"user_id", "stage_id"} & set(values)], written
    current = next(x for x in odoo.records("crm.lead") if x["id"] == lead["id"])
    assert (current["user_id"], current["stage_id"]) == (sinta, proposition)


def test_a_salesperson_who_is_no_agent_here_is_left_in_odoo(client, odoo):
    stranger = odoo.add("res.users", name="Luar", login="orang-luar")
    wa_id, phone = unique_phone()
    customer_writes(client, wa_id, "Tono", "Halo")
    settled()
    [partner] = partners(odoo, phone)
    [lead] = leads_of(odoo, partner["id"])
    odoo.edit("crm.lead", lead["id"], user_id=stranger)
    poll()
    with session_scope() as session:
        assert session.get_one(Contact, contact_id(phone)).assigned_agent is None
    settled()
    assert next(x for x in odoo.records("crm.lead") if x["id"] == lead["id"])["user_id"] == stranger


def test_a_conversation_waiting_past_its_respond_by_time_is_an_activity_until_answered(
    client, admin_headers, odoo
):
    from datetime import timedelta

    from models import Conversation, RoutingDecision
    from models.base import utcnow
    from schedules.crm import track_response_activities

    wa_id, phone = unique_phone()
    customer_writes(client, wa_id, "Lusi", "Kak, bisa kirim ke Bandung?")
    settled()
    [partner] = partners(odoo, phone)
    [lead] = leads_of(odoo, partner["id"])
    me = contact_id(phone)
    with session_scope() as session:
        conversation = session.scalars(select(Conversation).where(Conversation.contact_id == me)).one()
        conversation_id = conversation.id
        decision = session.scalars(select(RoutingDecision).where(RoutingDecision.contact_id == me)).one()
        assert decision.responder == "human" and decision.respond_by is not None
        # Nobody answered in time: as if the respond-by time had passed.
        decision.respond_by = utcnow() - timedelta(minutes=1)
        conversation.awaiting_reply_since = utcnow() - timedelta(minutes=10)
    assert track_response_activities() >= 1
    settled()
    assert track_response_activities() == 0  # once per waiting spell
    [activity] = [
        a for a in odoo.records("mail.activity") if (a["res_model"], a["res_id"]) == ("crm.lead", lead["id"])
    ]
    # For the lead's salesperson (the sync user when it has none).
    assert activity["summary"] == "Reply on WhatsApp: Lusi" and activity["user_id"] == (lead["user_id"] or 2)

    answer = client.post(
        f"/api/conversations/{conversation_id}/messages",
        json={"text": "Bisa kak, ongkirnya Rp20.000"},
        headers={**admin_headers, "Idempotency-Key": f"reply-{wa_id}", "X-Actor": "ayu"},
    )
    assert answer.status_code == 202, answer.text
    settled()
    assert track_response_activities() >= 1
    settled()
    assert [a for a in odoo.records("mail.activity") if a["res_id"] == lead["id"]] == []  # marked done
    assert any(
        "Answered on WhatsApp" in m["body"] for m in odoo.records("mail.message") if m["res_id"] == lead["id"]
    )
