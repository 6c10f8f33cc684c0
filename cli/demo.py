"""``./run demo``: post realistic webhooks to a running system and show what became of them."""

from __future__ import annotations

import os
import sys
import time

import requests

from settings import VAR_DIR, settings
from testkit import samples

CUSTOMERS = {
    "6281212345678": "Budi Santoso",
    "6285711112222": "Siti Rahma",
    "6281398765432": "Andi Wijaya",
}


def run(url: str) -> None:
    budi, siti, andi = CUSTOMERS
    first = samples.text(budi, "Halo, masih ada stok?", referral=samples.ad_referral())
    webhooks = [
        ("Budi asks about stock (came from an ad)", _from(budi, first)),
        (
            "Siti sends a photo",
            _from(
                siti, samples.message(siti, "image", image={"id": "1", "caption": "Yang ini ada warna lain?"})
            ),
        ),
        (
            "Budi taps a button",
            _from(
                budi,
                samples.message(
                    budi,
                    "interactive",
                    interactive={
                        "type": "button_reply",
                        "button_reply": {"id": "buy", "title": "Ya, mau pesan"},
                    },
                ),
            ),
        ),
        (
            "Andi shares a location",
            _from(andi, samples.message(andi, "location", location={"latitude": -6.2, "longitude": 106.8})),
        ),
        (
            "Siti votes in a poll (a type we do not know)",
            _from(siti, samples.message(siti, "poll", poll={"q": 1})),
        ),
        ("Meta delivers Budi's first webhook again", _from(budi, first)),
        (
            "a delivery receipt for a message sent elsewhere",
            samples.envelope(statuses=[samples.status(samples.wamid("out"), "delivered", budi)]),
        ),
    ]
    session = requests.Session()
    print(f"Posting {len(webhooks)} webhooks to {url}/webhooks/whatsapp\n")
    for title, payload in webhooks:
        body, headers = samples.encode(payload, settings.whatsapp_app_secret)
        answer = session.post(f"{url}/webhooks/whatsapp", data=body, headers=headers, timeout=10)
        print(f"  {answer.status_code} {answer.text:<32} {title}")
        if answer.status_code >= 300:
            sys.exit(f"the system refused a sample webhook: {answer.status_code} {answer.text}")

    session.headers["Authorization"] = f"Bearer {_admin_token()}"
    contacts = _wait_for_contacts(session, url, expected_messages=5)
    print("\nWhat the workers made of it:\n")
    for contact in contacts:
        detail = session.get(f"{url}/api/contacts/{contact['id']}", timeout=10).json()
        messages = session.get(f"{url}/api/contacts/{contact['id']}/messages", timeout=10).json()["items"]
        deal = detail["open_deal"]
        print(
            f"  contact {contact['id']}: {contact['name']} {contact['phone']}"
            f"  source={contact['lead_source']}"
            f"  window_open={contact['window_open']}  deal={deal['stage'] if deal else '-'}"
        )
        for message in messages:
            shown = message["type"] + (f" ({message['raw_type']})" if message["raw_type"] else "")
            print(f"      {message['direction']:<8} {shown:<24} {message['text'] or ''}")
    _order_demo(session, url)
    print(f"\nAPI docs: {url}/docs    metrics: {url}/metrics")


def _order_demo(session: requests.Session, url: str) -> None:
    """Budi orders (the order system has his number as 0812-…): each step sends its message."""
    order_id = f"DEMO-{int(time.time())}"
    in_three_days = time.strftime("%Y-%m-%d", time.localtime(time.time() + 3 * 86400))
    steps = [
        samples.order_event(
            "order.created", order_id, total=150000, currency="IDR", estimated_delivery_date=in_three_days
        ),
        samples.order_event("order.paid", order_id),
        samples.order_event("order.shipped", order_id, courier="JNE", tracking_number="JNE0123456789"),
    ]
    print(f"\nPosting {len(steps)} order-system events to {url}/webhooks/orders\n")
    for event in steps:
        body, headers = samples.encode(event, settings.order_webhook_secret, header="X-Signature-256")
        answer = requests.post(f"{url}/webhooks/orders", data=body, headers=headers, timeout=10)
        print(f"  {answer.status_code} {event['type']}")
        if answer.status_code >= 300:
            sys.exit(f"the system refused a sample order event: {answer.status_code} {answer.text}")
        _wait_for_order_message(session, url, order_id, event["type"])
    order = session.get(f"{url}/api/orders/{order_id}", timeout=10).json()
    print(f"\nOrder {order_id}: stage={order['stage']}  follow-up due {order['followup']['due_at']}")
    for message in order["messages"]:
        print(f"    {message['title']:<24} {message['status']:<8} as {message['sent_as']}: {message['text']}")


def _wait_for_order_message(session: requests.Session, url: str, order_id: str, event_type: str) -> None:
    """Each step's message is decided from the state the previous step left: wait for it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        answer = session.get(f"{url}/api/orders/{order_id}", timeout=10)
        if answer.status_code == 200 and any(
            m["status"] not in ("queued", "sending") and m["trigger"] == _TRIGGER[event_type]
            for m in answer.json()["messages"]
        ):
            return
        time.sleep(0.3)
    sys.exit(f"no message for {event_type} within a minute: is the worker running?")


_TRIGGER = {"order.created": "order_created", "order.paid": "order_paid", "order.shipped": "order_delivery"}


def _from(wa_id: str, message: dict) -> dict:
    return samples.envelope(messages=[message], contacts=[samples.profile(wa_id, CUSTOMERS[wa_id])])


def _admin_token() -> str:
    token = os.environ.get("ADMIN_TOKEN")
    path = VAR_DIR / "admin-token"
    if not token and path.exists():
        token = path.read_text().strip()
    if not token:
        sys.exit("set ADMIN_TOKEN to the token the running system uses")
    return token


def _wait_for_contacts(session: requests.Session, url: str, expected_messages: int) -> list[dict]:
    deadline = time.monotonic() + 60
    while True:
        answer = session.get(f"{url}/api/contacts", params={"limit": 500}, timeout=10)
        answer.raise_for_status()
        contacts = [c for c in answer.json()["items"] if c["phone"] and c["phone"][1:] in CUSTOMERS]
        counts = [
            len(session.get(f"{url}/api/contacts/{c['id']}/messages", timeout=10).json()["items"])
            for c in contacts
        ]
        if sum(counts) >= expected_messages or time.monotonic() > deadline:
            return contacts
        time.sleep(0.5)
