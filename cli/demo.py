"""``./run demo``: post realistic webhooks to a running system and show what became of them.

WhatsApp Cloud API messages from three customers, WAHA label events (staff labelling chats in the
WhatsApp Business app, which is what the dashboard draws) and an order's steps. It signs them with
the secrets of its own environment and reads the API with the admin token that ./run uses, so it
is meant to run beside ./run: every failure is one line saying what to do, never a traceback.
"""

from __future__ import annotations

import shlex
import sys
import time
from datetime import UTC, datetime
from urllib.parse import quote
from zoneinfo import ZoneInfo

import requests

from cli import up
from domain import business_hours
from settings import settings
from testkit import samples

CUSTOMERS = {
    "6281212345678": "Budi Santoso",
    "6285711112222": "Siti Rahma",
    "6281398765432": "Andi Wijaya",
}


def run(url: str) -> None:
    url = url.rstrip("/")
    try:
        _run(url)
    except requests.ConnectionError:
        sys.exit(f"nothing answers at {url}: start it with ./run first (or name it with --url)")
    except requests.Timeout:
        sys.exit(f"{url} did not answer within 10 s: is the system overloaded or stuck?")
    except requests.RequestException as exc:
        sys.exit(f"the demo stopped: {exc}")


def _run(url: str) -> None:
    session = requests.Session()
    token_source = _sign_in(session, url)
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
    print(f"Posting {len(webhooks)} webhooks to {url}/webhooks/whatsapp\n")
    for title, payload in webhooks:
        body, headers = samples.encode(payload, settings.whatsapp_app_secret)
        answer = _post(session, f"{url}/webhooks/whatsapp", body, headers, "WHATSAPP_APP_SECRET")
        print(f"  {answer.status_code} {answer.text:<32} {title}")

    target = session.get(f"{url}/api/labels", timeout=10).json()["target_label"]
    labelled = _label_demo(session, url, target)
    contacts = _wait_for_contacts(session, url, expected_messages=5, labelled=labelled)
    print("\nWhat the workers made of it:\n")
    for contact in contacts:
        detail = session.get(f"{url}/api/contacts/{contact['id']}", timeout=10).json()
        messages = session.get(f"{url}/api/contacts/{contact['id']}/messages", timeout=10).json()["items"]
        deal = detail["open_deal"]
        print(
            f"  contact {contact['id']}: {contact['name']} {contact['phone']}"
            f"  source={contact['lead_source']}"
            f"  window_open={contact['window_open']}  deal={deal['stage'] if deal else '-'}"
            f"  labels={', '.join(contact['labels']) or '-'}"
        )
        for message in messages:
            shown = message["type"] + (f" ({message['raw_type']})" if message["raw_type"] else "")
            print(f"      {message['direction']:<8} {shown:<24} {message['text'] or ''}")
    _order_demo(session, url)
    _where_to_look(url, target, token_source)


def _sign_in(session: requests.Session, url: str) -> str:
    """Check that the system answers and takes our admin token; returns where the token is from."""
    session.get(f"{url}/healthz", timeout=10)  # nothing listening: ConnectionError, one line
    found = up.current_admin_token()
    if found is None:
        sys.exit(
            f"no admin token: set ADMIN_TOKEN to the one the system at {url} uses "
            f"(./run makes one and keeps it in {up._shown(up.ADMIN_TOKEN_FILE)})"
        )
    token, source = found
    session.headers["Authorization"] = f"Bearer {token}"
    answer = session.get(f"{url}/api/labels", timeout=10)
    if answer.status_code == 401:
        sys.exit(
            f"{url} refused the admin token from {source} (401): set ADMIN_TOKEN to the token "
            "that system runs with (its ./run banner shows it)"
        )
    if answer.status_code == 503:
        sys.exit(f"{url} has no ADMIN_TOKEN set, so its API is closed (503): start it with ./run")
    if answer.status_code != 200:
        sys.exit(f"{url}/api/labels answered {answer.status_code}: is that the WhatsApp CRM?")
    return source


def _post(session: requests.Session, url: str, body: bytes, headers: dict, secret: str) -> requests.Response:
    """POST a signed sample; a refusal ends the demo with one line (``secret``: the setting that
    signs it, named when the signature is what was refused)."""
    answer = session.post(url, data=body, headers=headers, timeout=10)
    if answer.status_code == 401:
        sys.exit(
            f"{url} refused the signature of a sample (401): run the demo with the same {secret} "
            "as the system"
        )
    if answer.status_code == 503 and secret in answer.text:
        sys.exit(
            f"{url} refuses webhooks while {secret} is unset there (503): set the same {secret} "
            "for the system and the demo, or start the system with ./run (development mode)"
        )
    if answer.status_code >= 300:
        sys.exit(f"the system refused a sample: {answer.status_code} {answer.text[:200]}")
    return answer


def _label_demo(session: requests.Session, url: str, target: str) -> dict[str, set[str]]:
    """Staff label chats in the WhatsApp Business app; WAHA reports it. Returns the labels each
    customer (by number) should then have."""
    budi, siti, andi = CUSTOMERS
    rina, dewi = {"metadata": {"staff": "Rina"}}, {"metadata": {"staff": "Dewi"}}
    events = [
        ("label 'Lead' created in the WhatsApp Business app", samples.waha_label_upsert("1", "Lead")),
        (f"label {target!r} created", samples.waha_label_upsert("2", target)),
        (
            "Rina labels Budi's chat 'Lead'",
            samples.waha_label_chat("added", f"{budi}@c.us", "1", "Lead", **rina),
        ),
        (
            "Dewi labels Siti's chat 'Lead'",
            samples.waha_label_chat("added", f"{siti}@c.us", "1", "Lead", **dewi),
        ),
        (
            f"Rina labels Budi's chat {target!r}",
            samples.waha_label_chat("added", f"{budi}@c.us", "2", target, **rina),
        ),
        (
            f"Dewi labels Andi's chat {target!r}",
            samples.waha_label_chat("added", f"{andi}@c.us", "2", target, **dewi),
        ),
    ]
    print(f"\nPosting {len(events)} WAHA label events to {url}/webhooks/waha\n")
    now_ms = int(time.time() * 1000)
    for i, (title, event) in enumerate(events):
        event["timestamp"] = now_ms + i  # the order staff did it in
        body, headers = samples.waha_encode(event, settings.waha_hmac_key)
        answer = _post(session, f"{url}/webhooks/waha", body, headers, "WAHA_HMAC_KEY")
        print(f"  {answer.status_code} {answer.text:<32} {title}")
    return {budi: {"Lead", target}, siti: {"Lead"}, andi: {target}}


def _where_to_look(url: str, target: str, token_source: str) -> None:
    token = "$ADMIN_TOKEN" if token_source == "ADMIN_TOKEN" else f"$(cat {shlex.quote(token_source)})"
    auth = f'-H "Authorization: Bearer {token}"'
    print(
        "\nWhere to look:\n"
        f"  dashboard  {url}/dashboard  (sign in with the admin token, {_token_hint(token_source)})\n"
        f"  API docs   {url}/docs  (Authorize with the same token)\n"
        f"  contacts   curl {auth} {url}/api/contacts\n"
        f"  labelled   curl {auth} '{url}/api/contacts?label={quote(target)}'\n"
        f"  labels     curl {auth} {url}/api/labels\n"
        f"  metrics    {url}/metrics\n"
        f"\n{_hours_note()}"
    )


def _token_hint(source: str) -> str:
    return "the value of ADMIN_TOKEN" if source == "ADMIN_TOKEN" else f"kept in {source}"


def _hours_note() -> str:
    """The automated replies depend on the time of day: say which ones this run got."""
    spec, zone = settings.business_hours, settings.timezone
    try:
        open_now = business_hours.is_open(business_hours.parse(spec), datetime.now(UTC), zone)
        clock = datetime.now(ZoneInfo(zone)).strftime("%a %H:%M")
    except (ValueError, KeyError):  # KeyError: ZoneInfoNotFoundError, TIMEZONE is no known zone
        open_now, clock = None, "?"
    state = {True: "open", False: "closed", None: "unreadable"}[open_now]
    other = (
        "set BUSINESS_HOURS to hours that leave out now"
        if open_now
        else "start ./run with BUSINESS_HOURS=always"
    )
    return (
        "The automated replies depend on the time of day (BUSINESS_HOURS, on the clock of TIMEZONE):\n"
        f"  BUSINESS_HOURS={spec!r}: it is {clock} in {zone}, so {state}\n"
        "  (by this shell's settings; the running system reads its own).\n"
        "  Out of hours a new conversation gets the out-of-hours reply; in hours the FAQ answers what\n"
        f"  it can and the rest goes to the team. To see the other side, {other}."
    )


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
        answer = _post(session, f"{url}/webhooks/orders", body, headers, "ORDER_WEBHOOK_SECRET")
        print(f"  {answer.status_code} {event['type']}")
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


def _wait_for_contacts(
    session: requests.Session, url: str, expected_messages: int, labelled: dict[str, set[str]]
) -> list[dict]:
    """The demo's customers once the workers have stored their messages and labels (or after a
    minute: then what there is)."""
    deadline = time.monotonic() + 60
    while True:
        answer = session.get(f"{url}/api/contacts", params={"limit": 500}, timeout=10)
        answer.raise_for_status()
        contacts = [c for c in answer.json()["items"] if c["phone"] and c["phone"][1:] in CUSTOMERS]
        counts = [
            len(session.get(f"{url}/api/contacts/{c['id']}/messages", timeout=10).json()["items"])
            for c in contacts
        ]
        labels_done = all(
            wanted <= set(next((c["labels"] for c in contacts if c["phone"][1:] == phone), ()))
            for phone, wanted in labelled.items()
        )
        if (sum(counts) >= expected_messages and labels_done) or time.monotonic() > deadline:
            return contacts
        time.sleep(0.5)
