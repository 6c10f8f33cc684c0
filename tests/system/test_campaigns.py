"""Outcomes and campaign attribution end to end: webhooks in, the real worker, the API out.

Ads (the referral of the first message), tracked links (``/r/{code}`` and the ``ref:CODE`` its
WhatsApp text carries), outcomes from order events, opt-outs and beat's silence sweeper, the
Conversions API (the fake Cloud API answers it) and the UTM fields of the Odoo lead.
"""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from models import InboxEvent, OutboundMessage
from models.campaigns import ConversionEvent, LinkClick, TrackedLink
from models.db import session_scope
from models.outbox import QUEUED, SENDING
from queueing.publish import enqueue, send_conversions
from testkit import samples
from testkit.processes import CeleryProcess, wait_for
from testkit.waha import label_contact
from tests.system.conftest import CONVERSIONS_DATASET_ID

pytestmark = pytest.mark.usefixtures("worker")

_numbers = itertools.count(int(time.time()) % 10**7 * 10)


def unique_wa() -> str:
    return f"62858{next(_numbers) % 10**8:08d}"


def customer_writes(client, wa_id: str, text: str, *, at: int | None = None, referral: dict | None = None):
    message = samples.text(wa_id, text, at=at)
    if referral:
        message["referral"] = referral
    payload = samples.envelope(messages=[message], contacts=[samples.profile(wa_id, "Sari")])
    body, headers = samples.encode(payload)
    assert client.post("/webhooks/whatsapp", content=body, headers=headers).status_code == 200
    return body, headers


def post_order(client, event) -> None:
    body, headers = samples.encode(event)
    answer = client.post("/webhooks/orders", content=body, headers=headers)
    assert answer.status_code in (200, 202), answer.text


def order(event_type: str, order_id: str, wa_id: str, **details) -> dict:
    return samples.order_event(event_type, order_id, phone=f"+{wa_id}", contact_id=None, **details)


def settled(timeout: float = 60) -> None:
    """Every inbox event processed, every message sent, every Conversions API event settled."""

    def done() -> bool:
        with session_scope() as session:
            pending = session.scalar(select(func.count()).where(InboxEvent.state == "pending"))
            unsent = session.scalar(select(func.count()).where(OutboundMessage.state.in_((QUEUED, SENDING))))
            unsent += session.scalar(select(func.count()).where(ConversionEvent.state == "queued"))
        return pending == 0 and unsent == 0

    wait_for(done, timeout, "inbox, outbox and conversions settled")


def contact(client, admin_headers, wa_id: str) -> dict:
    found = client.get("/api/contacts", params={"phone": f"+{wa_id}"}, headers=admin_headers).json()["items"]
    assert len(found) == 1, found
    answer = client.get(f"/api/contacts/{found[0]['id']}", headers=admin_headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def only_conversation(client, admin_headers, wa_id: str) -> dict:
    [conversation] = contact(client, admin_headers, wa_id)["conversations"]
    return conversation


def campaign_named(client, admin_headers, name: str) -> dict:
    answer = client.get("/api/campaigns", headers=admin_headers)
    assert answer.status_code == 200, answer.text
    [item] = [i for i in answer.json()["items"] if i["campaign"] == name]
    return item


def make_link(client, admin_headers, **fields) -> dict:
    body = {
        "url": "https://wa.me/6281100000000?text=Halo%20kak",
        "utm_source": "instagram",
        "utm_medium": "bio",
        "utm_campaign": "Harbolnas 12.12",
    } | fields
    answer = client.post("/api/links", json=body, headers=admin_headers)
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_an_ad_contact_who_orders_and_pays_shows_under_the_ads_headline_with_revenue(
    client, admin_headers, cloud_api
):
    wa_id = unique_wa()
    referral = samples.ad_referral("120210000000000901") | {"headline": "Gamis Lebaran -30%"}
    customer_writes(client, wa_id, "Halo, masih ada?", referral=referral)
    settled()
    post_order(client, order("order.created", "SO-AD-1", wa_id, total=150000, currency="IDR"))
    post_order(client, order("order.paid", "SO-AD-1", wa_id))
    settled()

    ad = campaign_named(client, admin_headers, "Gamis Lebaran -30%")
    assert (ad["kind"], ad["key"]) == ("ad", "ad:120210000000000901")
    assert (ad["contacts"], ad["conversations"], ad["orders"], ad["paid_orders"]) == (1, 1, 1, 1)
    assert (float(ad["revenue"]), ad["currency"]) == (150000.0, "IDR")
    assert ad["conversion_rate"] == 1.0
    view = contact(client, admin_headers, wa_id)
    assert view["conversations"][0]["campaign"] == "Gamis Lebaran -30%"
    assert [(o["first_campaign"], o["last_campaign"]) for o in view["orders"]] == [
        ("Gamis Lebaran -30%", "Gamis Lebaran -30%")
    ]
    assert [t["kind"] for t in view["touches"]] == ["ad"]
    # The supervisors' team figures page shows it too, by headline, with the revenue in rupiah.
    figures = client.get("/inbox/figures", headers=admin_headers, cookies={"wacrm_lang": "en"})
    assert figures.status_code == 200
    campaigns = figures.text[figures.text.index('id="campaigns"') :]
    assert "Gamis Lebaran -30%" in campaigns and "150,000" in campaigns


def test_a_link_click_followed_by_a_conversation_credits_the_links_campaign(client, admin_headers):
    link = make_link(client, admin_headers)
    code = link["code"]
    assert link["short_url"].endswith(f"/r/{code}")
    # The WhatsApp link's prefilled text carries the code.
    assert parse_qs(urlsplit(link["url"]).query)["text"] == [f"Halo kak ref:{code}"]

    clicked = client.get(f"/r/{code}", follow_redirects=False)
    assert clicked.status_code == 302 and clicked.headers["location"] == link["url"]
    wa_id = unique_wa()
    customer_writes(client, wa_id, f"Halo kak ref:{code}")
    settled()
    post_order(client, order("order.created", "SO-LINK-1", wa_id, total=99000, currency="IDR"))
    post_order(client, order("order.paid", "SO-LINK-1", wa_id))
    settled()

    item = campaign_named(client, admin_headers, "Harbolnas 12.12")
    assert (item["kind"], item["conversations"], item["paid_orders"]) == ("link", 1, 1)
    assert float(item["revenue"]) == 99000.0
    conversation = only_conversation(client, admin_headers, wa_id)
    assert conversation["campaign"] == "Harbolnas 12.12"
    with session_scope() as session:
        [claimed] = session.scalars(select(LinkClick.conversation_id)).all()
    assert claimed == conversation["id"]  # the click is tied to the conversation that followed
    # The organic line does not count this conversation.
    organic = [
        i
        for i in client.get("/api/campaigns", headers=admin_headers).json()["items"]
        if i["kind"] == "organic"
    ]
    assert all(i["conversations"] == 0 for i in organic)


def test_an_unknown_code_is_a_404_page_and_records_nothing(client):
    for code in ("nosuchcode", "a", "..%2Fetc"):
        answer = client.get(f"/r/{code}", follow_redirects=False)
        assert answer.status_code == 404
        assert answer.headers["content-type"].startswith("text/html")
        assert "Link not found" in answer.text
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(LinkClick)) == 0


def test_the_redirect_goes_only_to_the_registered_url(client, admin_headers):
    link = make_link(client, admin_headers, url="https://toko.example/promo?x=1", code="promo-web")
    assert link["url"] == "https://toko.example/promo?x=1"  # not a WhatsApp link: kept as given
    for tail in ("?url=https://evil.example", "?next=//evil.example", "#https://evil.example"):
        answer = client.get(f"/r/promo-web{tail}", follow_redirects=False)
        assert answer.status_code == 302
        assert answer.headers["location"] == "https://toko.example/promo?x=1"

    # A URL that is no web address, or a taken code: refused, naming the field; nothing stored.
    for url in ("javascript:alert(1)", "//evil.example", "https://"):
        answer = client.post(
            "/api/links",
            json={"url": url, "utm_source": "a", "utm_medium": "b", "utm_campaign": "c"},
            headers=admin_headers,
        )
        assert answer.status_code == 422 and "url" in answer.text
    taken = client.post(
        "/api/links",
        json={
            "url": "https://evil.example",
            "utm_source": "a",
            "utm_medium": "b",
            "utm_campaign": "c",
            "code": "promo-web",
        },
        headers=admin_headers,
    )
    assert taken.status_code == 409 and "code" in taken.text
    with session_scope() as session:
        assert session.scalars(select(TrackedLink.url)).all() == ["https://toko.example/promo?x=1"]
    # Only admins make links.
    assert client.post("/api/links", json={"url": "https://a.example"}).status_code == 401


def test_an_order_within_the_window_sets_ordered_then_paid(client, admin_headers):
    wa_id = unique_wa()
    customer_writes(client, wa_id, "Mau pesan 2 ya kak")
    settled()
    assert only_conversation(client, admin_headers, wa_id)["outcome"] == "open"

    ordered_at = datetime.now(UTC).replace(microsecond=0)
    post_order(client, order("order.created", "SO-OUT-1", wa_id, occurred_at=ordered_at.isoformat()))
    settled()
    conversation = only_conversation(client, admin_headers, wa_id)
    assert conversation["outcome"] == "ordered"
    assert datetime.fromisoformat(conversation["outcome_at"]) == ordered_at

    paid_at = ordered_at + timedelta(minutes=5)
    post_order(client, order("order.paid", "SO-OUT-1", wa_id, occurred_at=paid_at.isoformat()))
    settled()
    conversation = only_conversation(client, admin_headers, wa_id)
    assert conversation["outcome"] == "paid"
    assert datetime.fromisoformat(conversation["outcome_at"]) == paid_at

    # A late replay of the order's creation does not take it back to "ordered".
    post_order(client, order("order.created", "SO-OUT-1", wa_id, occurred_at=ordered_at.isoformat()))
    settled()
    assert only_conversation(client, admin_headers, wa_id)["outcome"] == "paid"


def test_an_order_long_after_the_conversation_leaves_it_open(client, admin_headers):
    wa_id = unique_wa()
    ten_days_ago = int(time.time()) - 10 * 86400
    customer_writes(client, wa_id, "Halo kak", at=ten_days_ago)
    settled()
    post_order(client, order("order.created", "SO-LATE-1", wa_id))
    settled()
    # OUTCOME_ORDER_WINDOW_DAYS is 7.
    assert customers_conversation(client, admin_headers, wa_id)["outcome"] == "open"


def customers_conversation(client, admin_headers, wa_id: str) -> dict:
    """The conversation the customer wrote in (an automated reply much later starts its own)."""
    [conversation] = [
        c for c in contact(client, admin_headers, wa_id)["conversations"] if c["last_inbound_at"]
    ]
    return conversation


def test_silence_sets_went_silent_through_the_sweeper(client, admin_headers):
    wa_id = unique_wa()
    five_days_ago = int(time.time()) - 5 * 86400
    customer_writes(client, wa_id, "Ongkir ke Bandung berapa?", at=five_days_ago)
    settled()
    assert customers_conversation(client, admin_headers, wa_id)["outcome"] == "open"

    beat = CeleryProcess.beat(OUTCOME_SWEEP_INTERVAL_SECONDS="1")
    try:
        wait_for(
            lambda: customers_conversation(client, admin_headers, wa_id)["outcome"] == "went_silent",
            60,
            "the sweeper marking the conversation",
        )
    finally:
        beat.stop()
    # As of the moment the silence reached OUTCOME_SILENCE_HOURS (72 h after the last message).
    expected = datetime.fromtimestamp(five_days_ago, UTC) + timedelta(hours=72)
    outcome_at = customers_conversation(client, admin_headers, wa_id)["outcome_at"]
    assert datetime.fromisoformat(outcome_at) == expected


def test_an_opt_out_sets_opted_out(client, admin_headers):
    wa_id = unique_wa()
    customer_writes(client, wa_id, "Halo")
    customer_writes(client, wa_id, "STOP")
    settled()
    assert customers_conversation(client, admin_headers, wa_id)["outcome"] == "opted_out"
    assert contact(client, admin_headers, wa_id)["opted_out_at"] is not None


def test_conversions_api_gets_one_lead_and_one_purchase_even_when_the_order_event_is_replayed(
    client, admin_headers, cloud_api
):
    wa_id = unique_wa()
    referral = samples.ad_referral("120210000000000902") | {"ctwa_clid": "ARClid-902"}
    customer_writes(client, wa_id, "Info dong kak", referral=referral)
    settled()  # the conversation first: the order comes of it
    post_order(client, order("order.created", "SO-CAPI-1", wa_id, total=250000, currency="IDR"))
    paid = order("order.paid", "SO-CAPI-1", wa_id)
    post_order(client, paid)
    settled()
    # The same event again, the same step under another event id, every task delivered again.
    post_order(client, paid)
    post_order(client, order("order.paid", "SO-CAPI-1", wa_id))
    settled()
    with session_scope() as session:
        enqueue(list(session.scalars(select(InboxEvent.id))))
        send_conversions(list(session.scalars(select(ConversionEvent.id))) * 2)
    settled()
    wait_for(lambda: len(cloud_api.conversion_events) >= 2, 30, "two events at Meta")

    events = sorted(cloud_api.conversion_events, key=lambda e: e[1]["event_name"])
    assert [(dataset, e["event_name"]) for dataset, e in events] == [
        (CONVERSIONS_DATASET_ID, "LeadSubmitted"),
        (CONVERSIONS_DATASET_ID, "Purchase"),
    ]
    lead, purchase = (e for _, e in events)
    for event in (lead, purchase):
        assert event["action_source"] == "business_messaging" and event["messaging_channel"] == "whatsapp"
        assert event["user_data"]["ctwa_clid"] == "ARClid-902"
    assert purchase["event_id"] == "purchase-SO-CAPI-1"
    assert purchase["custom_data"] == {"currency": "IDR", "value": 250000.0}
    listed = client.get("/api/conversions", headers=admin_headers).json()
    assert sorted((e["event_name"], e["state"]) for e in listed) == [
        ("LeadSubmitted", "sent"),
        ("Purchase", "sent"),
    ]


def test_a_conversions_api_failure_is_retried_and_visible(client, admin_headers, cloud_api):
    cloud_api.fail_conversions_next()  # "service temporarily unavailable"
    wa_id = unique_wa()
    customer_writes(client, wa_id, "Halo", referral=samples.ad_referral("120210000000000903"))
    wait_for(
        lambda: any(e["last_error"] for e in client.get("/api/conversions", headers=admin_headers).json()),
        30,
        "the failed attempt recorded",
    )
    beat = CeleryProcess.beat()  # the sweeper sends it again once its backoff is over
    try:
        wait_for(lambda: len(cloud_api.conversion_events) == 1, 60, "the event sent on retry")
        settled()
    finally:
        beat.stop()
    [event] = client.get("/api/conversions", headers=admin_headers).json()
    assert (event["event_name"], event["state"], event["attempts"]) == ("LeadSubmitted", "sent", 2)


def test_the_odoo_lead_of_a_link_conversation_gets_its_utm_fields(client, admin_headers, odoo):
    link = make_link(
        client, admin_headers, utm_source="tiktok", utm_medium="qr", utm_campaign="Bazar Desember"
    )
    assert client.get(f"/r/{link['code']}", follow_redirects=False).status_code == 302
    wa_id = unique_wa()
    customer_writes(client, wa_id, f"Halo kak ref:{link['code']}")

    def lead() -> dict | None:
        leads = [r for r in odoo.records("crm.lead") if r["phone"] == f"+{wa_id}"]
        return leads[0] if leads and leads[0]["campaign_id"] else None

    wait_for(lambda: lead() is not None, 60, "the Odoo lead with its campaign")
    found = lead()
    names = {
        field: {r["id"]: r["name"] for r in odoo.records(model)}[found[field]]
        for field, model in (
            ("source_id", "utm.source"),
            ("medium_id", "utm.medium"),
            ("campaign_id", "utm.campaign"),
        )
    }
    assert names == {"source_id": "tiktok", "medium_id": "qr", "campaign_id": "Bazar Desember"}


def test_campaign_figures_refuse_a_bad_period(client, admin_headers):
    for params, field in (
        ({"since": "2026-12-01T00:00:00"}, "since"),
        ({"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, "since"),
        ({"until": "yesterday"}, "until"),
    ):
        answer = client.get("/api/campaigns", params=params, headers=admin_headers)
        assert answer.status_code == 422 and field in answer.text, answer.text


def test_a_contact_who_answers_a_broadcast_is_credited_to_it(client, admin_headers, cloud_api):
    wa_id = unique_wa()
    customer_writes(client, wa_id, "Halo kak")
    settled()
    label_contact(client, f"{wa_id}@c.us", "7", "Grade A")
    settled()
    answer = client.post(
        "/api/broadcasts", json={"label": "Grade A", "text": "Diskon 20% hari ini!"}, headers=admin_headers
    )
    assert answer.status_code == 202, answer.text
    broadcast_id = answer.json()["id"]

    def sent() -> bool:
        view = client.get(f"/api/broadcasts/{broadcast_id}", headers=admin_headers).json()
        return view["state"] == "expanded" and view["queued"] == 0

    wait_for(sent, 60, "the broadcast sent")
    customer_writes(client, wa_id, "Mau yang diskon kak, masih ada?")
    settled()
    item = campaign_named(client, admin_headers, f"broadcast {broadcast_id}: Grade A")
    assert (item["kind"], item["key"], item["conversations"]) == ("broadcast", f"broadcast:{broadcast_id}", 1)
    assert [t["kind"] for t in contact(client, admin_headers, wa_id)["touches"]] == ["broadcast"]
