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
