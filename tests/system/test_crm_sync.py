"""CRM sync to Odoo, end to end: webhook -> inbox -> worker -> sync job -> crm queue -> the real
JSON-RPC client -> ``testkit.fakes.odoo.FakeOdoo`` (a real HTTP server with Odoo's wire format).

Each test uses phone numbers of its own: a sync task of an earlier test may still be finishing
against the fake when the next one starts.
"""

from __future__ import annotations

import itertools
import os
import re
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from integrations.crm import (
    ActivityIn,
    CrmPermanentError,
    CrmTransientError,
    LeadIn,
    LogLine,
    OdooCrm,
    OdooRpc,
    PartnerIn,
    Target,
)
from models import Contact, CrmSyncJob, InboxEvent, Message, OutboundMessage, RoutingDecision
from models.base import utcnow
from models.crm import QUEUED, RUNNING
from models.db import session_scope
from models.labels import ContactLabel, Label
from models.outbox import QUEUED as OUTBOX_QUEUED
from models.outbox import SENDING
from pipeline import crm_sync
from queueing.publish import enqueue, sync_contacts
from schedules.crm import sweep_sync_jobs
from schedules.followups import fire_due_followups
from testkit import samples
from testkit.processes import wait_for

pytestmark = pytest.mark.usefixtures("worker")


# --- helpers -----------------------------------------------------------------------------------


def customer_writes(client, wa_id: str, name: str, *texts: str, **extra) -> None:
    """One webhook carrying ``texts`` as that many messages from one customer."""
    messages = [samples.text(wa_id, text, **extra) for text in texts]
    payload = samples.envelope(messages=messages, contacts=[samples.profile(wa_id, name)])
    body, headers = samples.encode(payload)
    assert client.post("/webhooks/whatsapp", content=body, headers=headers).status_code == 200


def post_order(client, event) -> None:
    body, headers = samples.encode(event)
    assert client.post("/webhooks/orders", content=body, headers=headers).status_code in (200, 202)


def unsynced() -> int:
    with session_scope() as session:
        pending = session.scalar(select(func.count()).where(InboxEvent.state == "pending"))
        unsent = session.scalar(
            select(func.count()).where(OutboundMessage.state.in_((OUTBOX_QUEUED, SENDING)))
        )
        jobs = session.scalar(select(func.count()).where(CrmSyncJob.state.in_((QUEUED, RUNNING))))
        # Routing changes the lead class and the salesperson, which queue a sync of their own.
        unrouted = session.scalar(
            select(func.count()).where(Message.direction == "inbound")
        ) - session.scalar(select(func.count()).select_from(RoutingDecision))
    return pending + unsent + jobs + unrouted


def settled(timeout: float = 90) -> None:
    """Every inbox event processed, every message sent, every sync job done or failed."""
    wait_for(lambda: unsynced() == 0, timeout, "inbox, outbox and CRM sync jobs settled")


def contact_id(phone: str) -> int:
    with session_scope() as session:
        return session.scalars(select(Contact.id).where(Contact.phone_e164 == phone)).one()


def crm_view(client, admin_headers, phone: str) -> dict:
    answer = client.get(f"/api/contacts/{contact_id(phone)}", headers=admin_headers)
    assert answer.status_code == 200, answer.text
    return answer.json()["crm"]


def partners(odoo, phone: str) -> list[dict]:
    return [p for p in odoo.records("res.partner") if p["phone"] == phone]


def leads_of(odoo, partner_id: int) -> list[dict]:
    return [lead for lead in odoo.records("crm.lead") if lead["partner_id"] == partner_id]


def posts_on(odoo, model: str, record_id: int) -> list[str]:
    return [
        m["body"] for m in odoo.records("mail.message") if (m["model"], m["res_id"]) == (model, record_id)
    ]


_numbers = itertools.count(int(time.time()) % 10**7 * 10)


def unique_phone() -> tuple[str, str]:
    """A fresh Indonesian mobile number: (wa_id, E.164)."""
    digits = f"62857{next(_numbers) % 10**8:08d}"
    return digits, f"+{digits}"


# --- the client against the fake, in this process ---------------------------------------------


def client_for(odoo, *, api_key: str | None = None, timeout: float = 2) -> OdooCrm:
    return OdooCrm(OdooRpc(odoo.url, odoo.db, odoo.login, api_key or odoo.api_key, timeout), "ID")


def test_client_turns_odoo_answers_into_typed_errors(odoo):
    crm_client = client_for(odoo)
    odoo.refuse("res.partner", name="Refused")
    with pytest.raises(CrmPermanentError) as refused:
        crm_client.upsert_partner(PartnerIn("Refused", "+6285700000001"))
    assert refused.value.error["name"] == "odoo.exceptions.ValidationError"

    odoo.down("refuse")
    with pytest.raises(CrmTransientError) as down:
        crm_client.upsert_partner(PartnerIn("Budi", "+6285700000002"))
    assert not down.value.unconfirmed  # connection refused: nothing reached Odoo
    odoo.up()
    odoo.down(503)
    with pytest.raises(CrmTransientError, match="HTTP 503"):
        crm_client.upsert_partner(PartnerIn("Budi", "+6285700000002"))
    odoo.up()

    # Odoo creates the partner but answers too late: unconfirmed, and the retry finds it.
    odoo.answer_late("res.partner", "create", 3)
    with pytest.raises(CrmTransientError) as late:
        crm_client.upsert_partner(PartnerIn("Budi", "+6285700000002"))
    assert late.value.unconfirmed
    found = partners(odoo, "+6285700000002")[0]["id"]
    assert crm_client.upsert_partner(PartnerIn("Budi", "+6285700000002")) == (found, False)
    assert len(partners(odoo, "+6285700000002")) == 1

    with pytest.raises(CrmTransientError, match="refused"):  # a wrong key: fixed by an operator, then retried
        client_for(odoo, api_key="wrong").upsert_partner(PartnerIn("X", None))


def test_client_reuses_records_and_touches_only_its_own_tags(odoo):
    crm_client = client_for(odoo)
    partner_id, _ = crm_client.upsert_partner(PartnerIn("Sari", "+6285700000003"))
    lead = LeadIn(
        "WhatsApp: Sari", partner_id, "Sari", "+6285700000003", tags=["Grade A"], source="WhatsApp ad 9"
    )
    lead_id, created = crm_client.find_or_create_lead(lead)
    assert created and crm_client.find_or_create_lead(lead) == (lead_id, False)
    manual = odoo.add("crm.tag", name="Set by a salesperson")
    odoo.tables["crm.lead"][lead_id]["tag_ids"].append(manual)
    crm_client.set_lead_tags(lead_id, ["VIP"], ["Grade A"])
    tags = {t["id"]: t["name"] for t in odoo.records("crm.tag")}
    assert sorted(tags[i] for i in odoo.records("crm.lead")[0]["tag_ids"]) == ["Set by a salesperson", "VIP"]
    assert [s["name"] for s in odoo.records("utm.source")] == ["WhatsApp ad 9"]
    crm_client.create_activity(Target("lead", lead_id), ActivityIn("Call", date.today()), "m:1", True)
    crm_client.create_activity(Target("lead", lead_id), ActivityIn("Call", date.today()), "m:1", True)
    assert len(odoo.records("mail.activity")) == 1


# --- end to end --------------------------------------------------------------------------------


def test_new_chat_creates_partner_and_lead_once_even_when_replayed(client, admin_headers, odoo_version):
    odoo = odoo_version  # once as each of Odoo 17, 18 (JSON-RPC) and 19 (JSON-2)
    wa_id, phone = unique_phone()
    payload = samples.inbound_text(wa_id, "Budi Santoso", "Halo, masih ada stok?")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message["referral"] = samples.ad_referral("120210000000000777")
    body, headers = samples.encode(payload)
    assert client.post("/webhooks/whatsapp", content=body, headers=headers).status_code == 200
    settled()
    # Meta delivers the webhook again; the broker delivers every task again.
    assert client.post("/webhooks/whatsapp", content=body, headers=headers).json()["duplicates"] == 1
    with session_scope() as session:
        enqueue(list(session.scalars(select(InboxEvent.id))))
    sync_contacts([contact_id(phone)] * 3)
    time.sleep(1)
    settled()

    [partner] = partners(odoo, phone)
    assert partner["name"] == "Budi Santoso"
    [lead] = leads_of(odoo, partner["id"])
    assert lead["name"] == "WhatsApp: Budi Santoso" and lead["phone"] == phone
    # Warm (asks about stock): two stars. No agents in the team, so nobody is assigned.
    assert lead["contact_name"] == "Budi Santoso" and lead["priority"] == "2"
    assert lead["user_id"] is False  # unassigned, not the API user
    [source] = [s for s in odoo.records("utm.source") if s["id"] == lead["source_id"]]
    assert source["name"] == "WhatsApp ad 120210000000000777"
    [medium] = [m for m in odoo.records("utm.medium") if m["id"] == lead["medium_id"]]
    [campaign] = [c for c in odoo.records("utm.campaign") if c["id"] == lead["campaign_id"]]
    assert (medium["name"], campaign["name"]) == ("WhatsApp", "Promo akhir tahun")
    assert "Promo akhir tahun" in lead["description"]
    [log] = posts_on(odoo, "crm.lead", lead["id"])
    assert "Halo, masih ada stok?" in log and "Budi Santoso" in log

    view = crm_view(client, admin_headers, phone)
    assert view["partner_id"] == partner["id"] and view["lead_ids"] == [lead["id"]]
    assert view["state"] == "synced" and view["errors"] == [] and view["last_synced_at"]


def test_existing_partner_with_the_phone_written_differently_is_reused(client, admin_headers, odoo):
    existing = odoo.add("res.partner", name="Bu Sari (toko)", phone="0813-5555-1234")
    other = odoo.add("res.partner", name="Someone else", phone="+62 813 9999 1234")  # same last digits
    customer_writes(client, "6281355551234", "Sari", "Kak, ready?")
    settled()
    assert [p["id"] for p in odoo.records("res.partner")] == [existing, other]  # nothing created
    [lead] = leads_of(odoo, existing)
    assert crm_view(client, admin_headers, "+6281355551234")["partner_id"] == existing
    assert lead["phone"] == "+6281355551234"


def test_a_hot_lead_gets_three_stars_and_its_agent_as_salesperson(client, admin_headers, odoo):
    ayu = odoo.add("res.users", name="Ayu", login="ayu")
    answer = client.put("/api/agents/ayu", json={"team": "sales"}, headers=admin_headers)
    assert answer.status_code == 200, answer.text
    wa_id, phone = unique_phone()
    customer_writes(client, wa_id, "Dewi", "Kak, harganya berapa? Mau transfer sekarang")
    settled()
    [partner] = partners(odoo, phone)
    [lead] = leads_of(odoo, partner["id"])
    assert (lead["priority"], lead["user_id"]) == ("3", ayu)


def test_label_added_adds_a_tag_and_removed_takes_it_off(client, odoo):
    wa_id, phone = unique_phone()
    customer_writes(client, wa_id, "Dewi", "Mau tanya harga")
    settled()
    [partner] = partners(odoo, phone)
    [lead] = leads_of(odoo, partner["id"])
    label_key = uuid.uuid4().hex[:8]
    person_tag = odoo.add("crm.tag", name="Set by a salesperson")
    odoo.tables["crm.lead"][lead["id"]]["tag_ids"].append(person_tag)

    def set_label(active: bool) -> None:
        """What the labels worker does: change the label and queue the sync, in one transaction."""
        with session_scope() as session:
            label = session.scalars(select(Label).where(Label.external_id == label_key)).first()
            if label is None:
                label = Label(session="default", external_id=label_key, name="Grade A")
                session.add(label)
                session.flush()
                session.add(
                    ContactLabel(
                        contact_id=contact_id(phone), label_id=label.id, active=active, changed_at=utcnow()
                    )
                )
            else:
                row = session.scalars(select(ContactLabel).where(ContactLabel.label_id == label.id)).one()
                row.active, row.changed_at = active, utcnow()
            crm_sync.queue_sync(session, contact_id(phone), "labels")

    def lead_tags() -> list[str]:
        names = {t["id"]: t["name"] for t in odoo.records("crm.tag")}
        [current] = [x for x in odoo.records("crm.lead") if x["id"] == lead["id"]]
        return sorted(names[i] for i in current["tag_ids"])

    set_label(True)
    settled()
    assert lead_tags() == ["Grade A", "Set by a salesperson"]
    set_label(False)
    settled()
    assert lead_tags() == ["Set by a salesperson"]  # a person's tag is left alone
    assert [t["name"] for t in odoo.records("crm.tag")].count("Grade A") == 1


def test_odoo_down_for_a_while_then_up_everything_synced_once(client, admin_headers, odoo, drained):
    odoo.add("product.product", name="WhatsApp order item", default_code="WACRM-ITEM", sale_ok=True)
    customers = [unique_phone() for _ in range(3)]
    odoo.down("refuse")
    for index, (wa_id, _) in enumerate(customers):
        customer_writes(client, wa_id, f"Pelanggan {index}", "Halo", "Ada diskon?")
    post_order(client, samples.order_event("order.created", f"SO-{customers[0][0]}", phone=customers[0][1]))
    drained()
    wait_for(
        lambda: crm_view(client, admin_headers, customers[0][1])["state"] == "retrying", 30, "a retrying job"
    )
    [error] = crm_view(client, admin_headers, customers[0][1])["errors"]
    assert "Connection refused" in error["error"]["message"]
    odoo.up()
    odoo.down(502)  # then a proxy in front of it answers for a while
    time.sleep(3)
    assert odoo.count("res.partner", "create") == 0
    odoo.up()
    settled()

    for index, (_, phone) in enumerate(customers):
        [partner] = partners(odoo, phone)
        [lead] = leads_of(odoo, partner["id"])
        posts = posts_on(odoo, "crm.lead", lead["id"])
        assert sum("Ada diskon?" in p for p in posts) == 1
        if index == 0:
            [sale_order] = [o for o in odoo.records("sale.order") if o["opportunity_id"] == lead["id"]]
            posts = posts_on(odoo, "sale.order", sale_order["id"])
            assert sum(f"Order SO-{customers[0][0]} created" in p for p in posts) == 1
        assert crm_view(client, admin_headers, phone)["state"] == "synced"


def test_a_validation_error_on_one_record_does_not_block_the_rest(client, admin_headers, odoo):
    refused, accepted, later = unique_phone(), unique_phone(), unique_phone()
    odoo.refuse("res.partner", name="Nama Ditolak")
    customer_writes(client, refused[0], "Nama Ditolak", "Halo")
    customer_writes(client, accepted[0], "Nama Baik", "Halo")
    settled()
    customer_writes(client, later[0], "Datang Kemudian", "Halo")
    customer_writes(client, refused[0], "Nama Ditolak", "Masih di sini")
    settled()

    assert partners(odoo, refused[1]) == []
    for _, phone in (accepted, later):
        [partner] = partners(odoo, phone)
        assert len(leads_of(odoo, partner["id"])) == 1
    view = crm_view(client, admin_headers, refused[1])
    assert view["state"] == "failed" and view["partner_id"] is None
    assert {job["kind"] for job in view["errors"]} >= {"lead", "log"}
    assert all(job["error"]["name"] == "odoo.exceptions.ValidationError" for job in view["errors"])
    assert "Nama Ditolak" in view["errors"][0]["error"]["message"]


def test_the_conversation_log_is_posted_in_batches(client, odoo):
    wa_id, phone = unique_phone()
    texts = [f"pesan nomor {n}" for n in range(1, 13)]
    customer_writes(client, wa_id, "Rina", *texts[:6])  # one webhook, six messages
    for text in texts[6:]:  # then six webhooks in a row, as a customer types
        customer_writes(client, wa_id, "Rina", text)
    settled()
    [partner] = partners(odoo, phone)
    [lead] = leads_of(odoo, partner["id"])
    posts = posts_on(odoo, "crm.lead", lead["id"])
    assert 1 <= len(posts) <= 3, posts
    logged = re.findall(r"pesan nomor (\d+)", " ".join(posts))
    assert sorted(map(int, logged)) == list(range(1, 13))  # each message once


def test_order_events_are_noted_and_a_delivery_followup_makes_an_activity(client, odoo):
    odoo.add("product.product", name="WhatsApp order item", default_code="WACRM-ITEM", sale_ok=True)
    wa_id, phone = unique_phone()
    order_id = f"SO-{wa_id}"
    customer_writes(client, wa_id, "Agus", "Saya mau pesan")
    settled()
    today = datetime.now(ZoneInfo("Asia/Jakarta")).date().isoformat()
    post_order(client, samples.order_event("order.created", order_id, phone=phone, total=150000))
    post_order(
        client,
        samples.order_event(
            "order.shipped",
            order_id,
            phone=phone,
            courier="JNE",
            tracking_number="JNE0123",
            estimated_delivery_date=today,
        ),
    )
    settled()

    def activity() -> list[dict]:
        fire_due_followups()  # beat's tick, run here: the follow-up is due today
        return [a for a in odoo.records("mail.activity") if a["summary"].endswith(order_id)]

    wait_for(activity, 90, "the follow-up's activity")
    settled()
    [partner] = partners(odoo, phone)
    [lead] = leads_of(odoo, partner["id"])
    [sale_order] = [o for o in odoo.records("sale.order") if o["client_order_ref"] == order_id]
    posts = " ".join(posts_on(odoo, "sale.order", sale_order["id"]))
    assert f"Order {order_id} created. Total Rp150.000." in posts
    assert "Courier JNE, tracking number JNE0123" in posts
    [activity] = [a for a in odoo.records("mail.activity") if a["res_id"] == lead["id"]]
    assert (
        activity["res_model"] == "crm.lead" and activity["summary"] == f"Delivery follow-up: order {order_id}"
    )


# --- a real Odoo -------------------------------------------------------------------------------


def test_against_a_real_odoo():
    """The client against a real Odoo (a test database: it leaves a partner and a lead there)."""
    url = os.environ.get("ODOO_TEST_URL")
    if not url:
        pytest.skip(
            "ODOO_TEST_URL is not set (with ODOO_TEST_DB, ODOO_TEST_LOGIN, ODOO_TEST_API_KEY): no real Odoo"
        )
    rpc = OdooRpc(
        url,
        os.environ["ODOO_TEST_DB"],
        os.environ["ODOO_TEST_LOGIN"],
        os.environ["ODOO_TEST_API_KEY"],
        timeout=30,
    )
    real = OdooCrm(rpc, "ID")
    _, phone = unique_phone()
    partner_id, created = real.upsert_partner(PartnerIn("wacrm test", phone))
    assert created and real.upsert_partner(PartnerIn("wacrm test", phone)) == (partner_id, False)
    lead = LeadIn(
        "wacrm test lead", partner_id, "wacrm test", phone, tags=["wacrm test"], source="wacrm test"
    )
    lead_id, created = real.find_or_create_lead(lead)
    assert created and real.find_or_create_lead(lead) == (lead_id, False)
    real.set_lead_tags(lead_id, ["wacrm test 2"], ["wacrm test"])
    target = Target("lead", lead_id)
    marker = f"wacrm-test:{uuid.uuid4().hex}"
    real.post_log(target, "test", [LogLine(datetime.now(UTC), "wacrm", "hello <world>")], marker)
    assert real.find_note(target, marker)
    real.post_note(target, "a note", f"{marker}-note")
    real.create_activity(target, ActivityIn("wacrm test", date.today(), "to do"), f"{marker}-a", True)


def test_the_sweeper_publishes_jobs_whose_task_was_lost(client, odoo):
    wa_id, phone = unique_phone()
    customer_writes(client, wa_id, "Lina", "Halo")
    settled()
    [partner] = partners(odoo, phone)
    [lead] = leads_of(odoo, partner["id"])
    long_ago = utcnow() - timedelta(minutes=10)
    with session_scope() as session:  # written without publishing, as if the broker had been down
        for key, state in (("lost:queued", QUEUED), ("lost:running", RUNNING)):
            session.add(
                CrmSyncJob(
                    contact_id=contact_id(phone),
                    kind="note",
                    reason="test",
                    dedupe_key=key,
                    payload={"text": f"found {key}"},
                    state=state,
                    next_attempt_at=long_ago,
                    lease_until=long_ago if state == RUNNING else None,  # its worker died long ago
                )
            )
    assert sweep_sync_jobs() == 1  # one contact published again
    settled()
    posts = " ".join(posts_on(odoo, "crm.lead", lead["id"]))
    assert "found lost:queued" in posts and "found lost:running" in posts


def test_many_new_customers_cost_a_few_calls_in_all(odoo):
    """The batch the worker makes of contacts synced together: partners looked up in one
    search_read (by our reference and by phone, however typed) and the missing ones created in
    one create; their leads in one create."""
    crm_client = client_for(odoo)
    typed = odoo.add("res.partner", name="Bu Sari", phone="0813-5555-7777")
    ours = odoo.add("res.partner", name="Old", ref="wacrm-contact:901")
    odoo.calls.clear()
    people = [
        PartnerIn("Sari", "+6281355557777", ref="wacrm-contact:900"),
        PartnerIn("Old", None, ref="wacrm-contact:901"),
        PartnerIn("Baru 1", "+6285700009001", ref="wacrm-contact:902"),
        PartnerIn("Baru 2", "+6285700009002", ref="wacrm-contact:903"),
    ]
    found = crm_client.upsert_partners(people)
    assert found[:2] == [(typed, False), (ours, False)]
    assert [created for _, created in found[2:]] == [True, True]
    assert odoo.count("res.partner", "search_read") == 1 and odoo.count("res.partner", "create") == 1
    leads = crm_client.create_leads(
        [
            LeadIn(f"WhatsApp: {p.name}", partner_id, p.name, p.phone)
            for p, (partner_id, _) in zip(people, found, strict=True)
        ]
    )
    assert len(set(leads)) == 4 and odoo.count("crm.lead", "create") == 1
    once_per_process = odoo.count("common") + odoo.count(method="fields_get")  # version, login, fields
    assert odoo.count() - once_per_process == 3
