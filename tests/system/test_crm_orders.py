"""Orders into Odoo: each order of the order system becomes one ``sale.order`` of the contact's
partner, linked to the lead, keyed by the order's id (``client_order_ref`` and an external id in
``ir.model.data``), with its lines, confirmed and cancelled as the order is, its payment and
shipment in its chatter. End to end: webhook -> inbox -> worker -> sync job -> the real JSON-RPC
client -> the fake Odoo (testkit/fakes/odoo.py).
"""

from __future__ import annotations

import pytest

from integrations.crm import OdooCrm, OdooRpc, SaleLine, SaleOrderIn
from integrations.crm.odoo import XMLID_MODULE, sale_order_xmlid
from testkit import samples
from tests.system.test_crm_sync import (
    crm_view,
    customer_writes,
    leads_of,
    partners,
    post_order,
    posts_on,
    settled,
    unique_phone,
)

pytestmark = pytest.mark.usefixtures("worker")

GENERIC = "WACRM-ITEM"  # ODOO_GENERIC_PRODUCT's default


def catalogue(odoo) -> dict[str, int]:
    """What a shop has in Odoo: its products, and the generic one for everything else."""
    return {
        GENERIC: odoo.add("product.product", name="WhatsApp order item", default_code=GENERIC, sale_ok=True),
        "KAOS-M": odoo.add("product.product", name="Kaos polos M", default_code="KAOS-M", sale_ok=True),
    }


def sale_orders(odoo, key: str) -> list[dict]:
    return [o for o in odoo.records("sale.order") if o["client_order_ref"] == key]


def lines_of(odoo, sale_order: dict) -> list[dict]:
    return [line for line in odoo.records("sale.order.line") if line["order_id"] == sale_order["id"]]


def test_an_order_becomes_one_confirmed_sale_order_with_its_lines_and_chatter(client, admin_headers, odoo):
    products = catalogue(odoo)
    wa_id, phone = unique_phone()
    order_id = f"SO-{wa_id}"
    customer_writes(client, wa_id, "Agus", "Saya mau pesan kaos")
    settled()
    items = [
        {"sku": "KAOS-M", "name": "Kaos polos M", "qty": 2, "price": 50000},
        {"sku": "TOPI-X", "name": "Topi (not in Odoo)", "qty": 1, "price": 30000},
    ]
    created = samples.order_event(
        "order.created", order_id, phone=phone, total=150000, currency="IDR", items=items
    )
    post_order(client, created)
    post_order(client, created)  # the order system sends it again
    post_order(client, samples.order_event("order.paid", order_id, phone=phone))
    post_order(
        client,
        samples.order_event("order.shipped", order_id, phone=phone, courier="JNE", tracking_number="JNE0123"),
    )
    settled()

    [partner] = partners(odoo, phone)
    [lead] = leads_of(odoo, partner["id"])
    [sale_order] = sale_orders(odoo, order_id)
    assert (sale_order["partner_id"], sale_order["opportunity_id"]) == (partner["id"], lead["id"])
    assert sale_order["state"] == "sale" and sale_order["amount_total"] == 150000
    lines = [
        (line["product_id"], line["product_uom_qty"], line["price_unit"])
        for line in lines_of(odoo, sale_order)
    ]
    # The known sku on its product, the unknown one on the generic product, and the difference
    # to the order's total (shipping) on a line of its own.
    assert lines == [
        (products["KAOS-M"], 2, 50000),
        (products[GENERIC], 1, 30000),
        (products[GENERIC], 1, 20000),
    ]
    [stamp] = [x for x in odoo.records("ir.model.data") if x["model"] == "sale.order"]
    assert (stamp["module"], stamp["name"], stamp["res_id"]) == (
        XMLID_MODULE,
        sale_order_xmlid(order_id),
        sale_order["id"],
    )
    chatter = " ".join(posts_on(odoo, "sale.order", sale_order["id"]))
    assert f"Order {order_id} paid" in chatter
    assert "Courier JNE, tracking number JNE0123" in chatter
    assert chatter.count(f"Order {order_id} created") == 1
    assert crm_view(client, admin_headers, phone)["sale_order_ids"] == [sale_order["id"]]


def test_a_cancelled_order_cancels_its_sale_order(client, odoo):
    catalogue(odoo)
    wa_id, phone = unique_phone()
    order_id = f"SO-{wa_id}"
    post_order(client, samples.order_event("order.created", order_id, phone=phone, total=99000))
    settled()
    [sale_order] = sale_orders(odoo, order_id)
    assert sale_order["state"] == "sale"
    assert [line["name"] for line in lines_of(odoo, sale_order)] == [
        f"Order {order_id}"
    ]  # no items: one line
    post_order(client, samples.order_event("order.cancelled", order_id, phone=phone))
    settled()
    [sale_order] = sale_orders(odoo, order_id)
    assert sale_order["state"] == "cancel"


def test_a_sale_order_whose_answer_was_lost_is_found_not_made_again(odoo):
    """Odoo creates the sale order but answers too late, then the external id's stamp is lost
    too: each retry finds what the attempt before it made."""
    catalogue(odoo)
    crm = OdooCrm(OdooRpc(odoo.url, odoo.db, odoo.login, odoo.api_key, 2), "ID")
    partner_id, _ = crm.upsert_partner(samples_partner())
    order = SaleOrderIn("SO-LATE-1", partner_id, None, [SaleLine("Kaos", 1, 10000, "X")], None, "IDR", "test")
    odoo.answer_late("sale.order", "create", 3)
    with pytest.raises(Exception):  # noqa: B017 - a read timeout: CrmTransientError, unconfirmed
        crm.upsert_sale_order(order, check_first=False)
    odoo.answer_late("ir.model.data", "create", 3)
    with pytest.raises(Exception):  # noqa: B017
        crm.upsert_sale_order(order, check_first=True)
    found, state = crm.upsert_sale_order(order, check_first=True)
    assert [o["id"] for o in odoo.records("sale.order")] == [found] and state == "draft"
    assert [x["res_id"] for x in odoo.records("ir.model.data")] == [found]
    assert crm.set_sale_order_state(found, "sale", check_first=True) == "sale"
    assert crm.set_sale_order_state(found, "sale", check_first=True) == "sale"  # read, not confirmed twice
    assert odoo.count("sale.order", "action_confirm") == 1


def test_odoo_answers_as_odoo_does_for_missing_records_access_and_unknown_fields(odoo):
    from integrations.crm import CrmPermanentError

    crm = OdooCrm(OdooRpc(odoo.url, odoo.db, odoo.login, odoo.api_key, 2), "ID")
    with pytest.raises(CrmPermanentError) as missing:
        crm.set_sale_order_state(987654, "sale", check_first=False)
    assert missing.value.error["name"] == "odoo.exceptions.MissingError"
    with pytest.raises(CrmPermanentError) as unknown:
        crm.rpc.execute("sale.order", "search_read", [], fields=["no_such_field"])
    assert "Invalid field" in unknown.value.error["message"]
    odoo.deny("sale.order", "create")
    partner_id, _ = crm.upsert_partner(samples_partner())
    catalogue(odoo)
    with pytest.raises(CrmPermanentError) as denied:
        crm.upsert_sale_order(
            SaleOrderIn("SO-DENIED", partner_id, None, [], 1000, None, "t"), check_first=False
        )
    assert denied.value.error["name"] == "odoo.exceptions.AccessError"
    assert odoo.records("sale.order") == []


def samples_partner():
    from integrations.crm import PartnerIn

    return PartnerIn("Pelanggan", None, ref=f"wacrm-test:{id(object())}")


# --- the pipeline ------------------------------------------------------------------------------


def stage_name(odoo, lead: dict) -> str:
    return {s["id"]: s["name"] for s in odoo.records("crm.stage")}[lead["stage_id"]]


def lead_now(odoo, lead_id: int) -> dict:
    return next(lead for lead in odoo.records("crm.lead") if lead["id"] == lead_id)


def deal_stage_here(phone: str) -> str:
    from sqlalchemy import select

    from models import Deal
    from models.db import session_scope

    with session_scope() as session:
        return session.scalars(
            select(Deal.stage).where(Deal.contact_id == contact_id(phone)).order_by(Deal.id.desc())
        ).first()


def contact_id(phone: str) -> int:
    from tests.system.test_crm_sync import contact_id as find

    return find(phone)


def sent_triggers(phone: str) -> list[str]:
    from sqlalchemy import select

    from models import OutboundMessage
    from models.db import session_scope

    with session_scope() as session:
        return sorted(
            session.scalars(
                select(OutboundMessage.trigger).where(
                    OutboundMessage.contact_id == contact_id(phone), OutboundMessage.state == "sent"
                )
            )
        )


def test_the_order_lifecycle_moves_the_pipeline_to_one_won_lead(client, odoo_version):
    odoo = odoo_version  # once as each of Odoo 17, 18 (JSON-RPC) and 19 (JSON-2)
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from schedules.followups import fire_due_followups
    from testkit.processes import wait_for

    catalogue(odoo)
    wa_id, phone = unique_phone()
    order_id = f"SO-{wa_id}"
    post_order(client, samples.order_event("contact.created", None, phone=phone, name="Wati"))
    customer_writes(client, wa_id, "Wati", "Kak, harganya berapa? Mau transfer sekarang")  # a hot lead
    settled()
    [partner] = partners(odoo, phone)
    [lead] = leads_of(odoo, partner["id"])
    assert stage_name(odoo, lead) == "Qualified" and deal_stage_here(phone) == "qualified"
    assert lead["team_id"] == next(t["id"] for t in odoo.records("crm.team") if t["name"] == "Sales")

    post_order(client, samples.order_event("order.created", order_id, phone=phone, total=250000))
    settled()
    lead = lead_now(odoo, lead["id"])
    assert stage_name(odoo, lead) == "Proposition" and lead["expected_revenue"] == 250000
    assert deal_stage_here(phone) == "ordered"

    today = datetime.now(ZoneInfo("Asia/Jakarta")).date().isoformat()
    post_order(client, samples.order_event("order.paid", order_id, phone=phone))
    post_order(
        client,
        samples.order_event(
            "order.shipped",
            order_id,
            phone=phone,
            courier="SiCepat",
            tracking_number="SCP777",
            estimated_delivery_date=today,
        ),
    )
    settled()
    # Fired (once: a follow-up is queued once per cause) and then sent, before the order is received.
    wait_for(
        lambda: fire_due_followups() >= 0 and "order_followup_delivery" in sent_triggers(phone),
        60,
        "the follow-up sent",
    )
    post_order(client, samples.order_event("order.received", order_id, phone=phone))
    settled()

    [lead] = leads_of(odoo, partner["id"])  # still one lead: won, not a second one
    assert stage_name(odoo, lead) == "Won" and lead["probability"] == 100 and lead["active"]
    assert odoo.count("crm.lead", "action_set_won") == 1
    assert deal_stage_here(phone) == "won"
    [sale_order] = sale_orders(odoo, order_id)
    assert sale_order["state"] == "sale" and sale_order["opportunity_id"] == lead["id"]
    chatter = " ".join(posts_on(odoo, "sale.order", sale_order["id"]))
    assert f"Order {order_id} paid" in chatter and "tracking number SCP777" in chatter
    assert sent_triggers(phone) == sorted(
        [
            "contact_created",
            "order_created",
            "order_paid",
            "order_delivery",
            "order_followup_delivery",
            "order_received",
        ]
    )


def test_a_cancelled_order_loses_the_lead_with_its_reason(client, odoo):
    catalogue(odoo)
    wa_id, phone = unique_phone()
    order_id = f"SO-{wa_id}"
    customer_writes(client, wa_id, "Yanti", "Halo kak")
    post_order(client, samples.order_event("order.created", order_id, phone=phone, total=80000))
    settled()
    post_order(client, samples.order_event("order.cancelled", order_id, phone=phone))
    settled()
    [partner] = partners(odoo, phone)
    [lead] = [x for x in odoo.records("crm.lead") if x["partner_id"] == partner["id"]]
    assert lead["active"] is False and lead["probability"] == 0
    reasons = {r["id"]: r["name"] for r in odoo.records("crm.lost.reason")}
    assert reasons[lead["lost_reason_id"]] == "Order cancelled"
    assert deal_stage_here(phone) == "lost"
    assert [o["state"] for o in sale_orders(odoo, order_id)] == ["cancel"]

    # A new order after all: the lead is restored and moves on.
    post_order(client, samples.order_event("order.created", f"{order_id}-2", phone=phone, total=90000))
    settled()
    lead = lead_now(odoo, lead["id"])
    assert lead["active"] is True and stage_name(odoo, lead) == "Proposition"
    assert lead["expected_revenue"] == 90000


def test_a_person_answering_moves_the_lead_to_the_replied_stage(client, admin_headers, odoo):
    from sqlalchemy import select

    from models import Conversation
    from models.db import session_scope

    wa_id, phone = unique_phone()
    customer_writes(client, wa_id, "Rudi", "Halo")
    settled()
    [partner] = partners(odoo, phone)
    [lead] = leads_of(odoo, partner["id"])
    assert stage_name(odoo, lead) == "New"
    with session_scope() as session:
        conversation = session.scalars(
            select(Conversation.id).where(Conversation.contact_id == contact_id(phone))
        ).one()
    answer = client.post(
        f"/api/conversations/{conversation}/messages",
        json={"text": "Halo Rudi, ada yang bisa dibantu?"},
        headers={**admin_headers, "Idempotency-Key": f"reply-{wa_id}", "X-Actor": "ayu"},
    )
    assert answer.status_code == 202, answer.text
    settled()
    assert stage_name(odoo, lead_now(odoo, lead["id"])) == "Qualified"  # CRM_STAGE_MAP: replied=Qualified
    assert deal_stage_here(phone) == "replied"
