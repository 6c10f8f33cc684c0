"""Odoo as the order system: a sale order confirmed in Odoo, its invoice paid, its delivery done
with a tracking number become order.created, order.paid and order.shipped here, each once, with
the same automated messages in stage order. Odoo's webhook (``POST /webhooks/odoo/{secret}``)
only wakes the read-back up; the read-back by ``write_date`` finds what a webhook missed."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from schedules.followups import fire_due_followups
from testkit.processes import wait_for
from tests.system.test_crm_orders import sent_triggers as triggers_of
from tests.system.test_crm_sync import leads_of, posts_on, settled, unique_phone

pytestmark = pytest.mark.usefixtures("worker")
SECRET = "odoo-hook-secret"  # tests/system/conftest.py


def hook(client, model: str, record_id: int) -> None:
    """What Odoo's automation rule posts: the model, the id and the chosen fields."""
    body = {"_action": "Notify WA(#5)", "_model": model, "_id": record_id, "id": record_id}
    answer = client.post(f"/webhooks/odoo/{SECRET}", json=body)
    assert answer.status_code == 200, answer.text


def sent_triggers(phone: str) -> list[str]:
    """The contact's sent messages by trigger; none while the contact is not there yet."""
    from sqlalchemy.exc import NoResultFound

    try:
        return triggers_of(phone)
    except NoResultFound:
        return []


def poll() -> int:
    from workers.crm import poll_odoo

    return poll_odoo()


def test_the_order_lifecycle_run_in_odoo_sends_each_message_once_in_order(client, odoo_version):
    odoo = odoo_version  # once as each of Odoo 17, 18 (JSON-RPC) and 19 (JSON-2)
    poll()  # the first read-back only sets its cursors: what Odoo held before is not news
    wa_id, phone = unique_phone()
    partner = odoo.add("res.partner", name="Bu Ratna", phone=f"0{wa_id[2:5]}-{wa_id[5:9]}-{wa_id[9:]}")
    product = odoo.add("product.product", name="Kaos", default_code="KAOS-L", sale_ok=True)
    sale_order = odoo.add(
        "sale.order",
        partner_id=partner,
        order_line=[[0, 0, {"product_id": product, "product_uom_qty": 2, "price_unit": 60000}]],
    )
    odoo.edit("sale.order", sale_order, state="sale")  # confirmed by a salesperson
    hook(client, "sale.order", sale_order)
    hook(client, "sale.order", sale_order)  # Odoo fires again on the next save
    name = next(o["name"] for o in odoo.records("sale.order") if o["id"] == sale_order)
    wait_for(lambda: "order_created" in sent_triggers(phone), 60, "order.created from Odoo")

    odoo.add(
        "account.move",
        move_type="out_invoice",
        state="posted",
        payment_state="paid",
        invoice_origin=name,
        partner_id=partner,
        amount_total=120000,
    )
    # No webhook for the invoice: the read-back by write_date finds it.
    poll()
    carrier = odoo.add("delivery.carrier", name="JNE")
    today = datetime.now(ZoneInfo("Asia/Jakarta")).date().isoformat()
    picking = odoo.add(
        "stock.picking",
        origin=name,
        sale_id=sale_order,
        partner_id=partner,
        picking_type_code="outgoing",
        scheduled_date=f"{today} 03:00:00",
    )
    odoo.edit("stock.picking", picking, state="done", carrier_id=carrier, carrier_tracking_ref="JNE-ODOO-1")
    hook(client, "stock.picking", picking)
    wait_for(lambda: "order_delivery" in sent_triggers(phone), 60, "order.shipped from Odoo")
    poll()
    poll()  # read again: nothing new
    settled()
    wait_for(
        lambda: fire_due_followups() >= 0 and "order_followup_delivery" in sent_triggers(phone),
        60,
        "the follow-up sent",
    )
    settled()

    assert sent_triggers(phone) == sorted(
        ["order_created", "order_paid", "order_delivery", "order_followup_delivery"]
    )
    assert [o["id"] for o in odoo.records("sale.order")] == [sale_order]  # none made for it
    [lead] = leads_of(odoo, partner)
    stages = {s["id"]: s for s in odoo.records("crm.stage")}
    assert stages[lead["stage_id"]]["is_won"] and lead["probability"] == 100
    chatter = " ".join(posts_on(odoo, "sale.order", sale_order))
    assert "tracking number JNE-ODOO-1" in chatter and f"Order {name} paid" in chatter


def test_the_webhook_needs_its_secret_and_a_known_model(client):
    assert client.post("/webhooks/odoo/wrong", json={"_model": "sale.order", "_id": 1}).status_code == 404
    assert client.post(f"/webhooks/odoo/{SECRET}", json={"_model": "res.users", "_id": 1}).status_code == 400
    assert (
        client.post(f"/webhooks/odoo/{SECRET}", json={"_model": "sale.order", "_id": "1"}).status_code == 400
    )
