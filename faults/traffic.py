"""The event stream of a run, and the sender that delivers it as Meta, WAHA and an order system
would: signed webhooks over HTTP, retried until they are answered 2xx.

The stream (``Traffic``) mixes, from a few hundred customers:

- Cloud API inbound messages (one per webhook, sometimes a batch of two or three);
- statuses (``sent``, ``delivered``, ``read``) for messages the fake Cloud API accepted, with
  the ``biz_opaque_callback_data`` Meta echoes; the delivery follow-ups get theirs first, and a
  delivered follow-up asks the customer how the order was;
- WAHA label catalogue events, ``label.chat.added``/``deleted`` with increasing event times,
  and WAHA inbound messages;
- order-system events: ``contact.created`` (a welcome message), then each order's
  ``order.created``, ``order.paid``, ``order.updated``, ``order.shipped`` (a delivery date of
  today, whose follow-up beat sends at once, or in three days) and ``order.received``, some
  orders cancelled on the way. An order's next step comes only after a gap of other events, as
  an order system's would, though faults may still get them processed out of order;
- replays: a small share of deliveries is sent again with the same event id.

An event counts as accepted once a delivery carrying it was answered 2xx (``accepted`` or
``duplicate``: a first attempt may have been committed before its answer was lost). 5xx, 429 and
network errors are retried with backoff, as Meta retries; any other answer is a refusal,
reported, and not retried.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import requests

from faults.cloud import RecordingCloudApi, Send
from faults.environment import APP_SECRET, ORDER_SECRET, WAHA_HMAC_KEY
from testkit import samples

LABELS = {"1": "Lead", "2": "Grade A", "3": "Grade B", "4": "Follow up", "5": "VIP", "6": "Komplain"}
STATUS_ORDER = ("sent", "delivered", "read")
REPLAY_SHARE = 0.03
# Shares of the events that are not replays (they add up to 1).
MIX = {"message": 0.40, "waha_message": 0.05, "status": 0.15, "label": 0.15, "order": 0.25}
GIVE_UP_SECONDS = 180.0  # a delivery still unanswered after this is reported as not accepted
TIMEZONE = ZoneInfo("Asia/Jakarta")


@dataclass
class EventRecord:
    """One event (one inbox row to be), keyed as the producer keys it."""

    source: str  # whatsapp | waha | orders
    key: str  # the producer's dedupe key
    kind: str  # message | status | label.chat.added | order.paid | ...
    info: dict[str, Any] = field(default_factory=dict)
    accepted_at: float | None = None  # when a delivery carrying it was answered 2xx


@dataclass
class Delivery:
    """One HTTP request: a webhook carrying one or more events."""

    path: str
    body: bytes
    headers: dict[str, str]
    events: list[EventRecord]
    replay: bool = False


@dataclass
class Customer:
    wa_id: str  # 62812XXXXXXXX
    name: str
    contact_ref: str  # the order system's id for them

    @property
    def typed_phone(self) -> str:
        """The number as the order system has it: 0812-XXXX-XXXX (the same person)."""
        local = "0" + self.wa_id[2:]
        return f"{local[:4]}-{local[4:8]}-{local[8:]}"

    @property
    def chat_id(self) -> str:
        return f"{self.wa_id}@c.us"


@dataclass
class OrderPlan:
    order_id: str
    customer: Customer
    steps: deque[tuple[str, dict[str, Any]]]
    next_at: int  # the stream position from which the next step may go


class Traffic:
    """The stream of deliveries. Not thread-safe: the sender calls ``next_delivery`` under a lock."""

    def __init__(self, events: int, seed: int, cloud: RecordingCloudApi) -> None:
        self.target = events
        self.rng = random.Random(seed)
        self.cloud = cloud
        self.produced = 0  # distinct events handed out
        self.records: dict[tuple[str, str], EventRecord] = {}
        self.history: list[Delivery] = []
        self.replays = 0
        customers = min(300, max(40, events // 15))
        numbers = self.rng.sample(range(10**7, 10**8), customers)
        self.customers = [
            Customer(f"62812{n:08d}", f"Pelanggan {i}", f"C-{i}") for i, n in enumerate(numbers)
        ]
        self.order_gap = max(30, events // 25)
        self.orders: list[OrderPlan] = []
        self._order_numbers = itertools.count(1)
        self._run = f"{seed:x}-{self.rng.getrandbits(24):06x}"
        self._welcomed: set[str] = set()
        self._label_actions: dict[tuple[str, str], str] = {}
        self._label_ms = 0
        self._statuses: dict[str, set[str]] = {}  # wamid -> statuses sent
        self._upserts = deque(LABELS.items())

    # --- the stream ---------------------------------------------------------------------------

    def next_delivery(self) -> Delivery | None:
        if self.produced >= self.target:
            return None
        if self._upserts:
            label_id, name = self._upserts.popleft()
            payload = samples.waha_label_upsert(label_id, name, at_ms=self._next_ms())
            return self._waha(payload, "label.upsert", {"label": label_id})
        if self.history and self.rng.random() < REPLAY_SHARE:
            self.replays += 1
            original = self.rng.choice(self.history)
            return Delivery(original.path, original.body, original.headers, original.events, replay=True)
        kind = self.rng.choices(list(MIX), weights=list(MIX.values()))[0]
        delivery = getattr(self, f"_{kind}")()
        self.history.append(delivery)
        return delivery

    def accepted(self) -> list[EventRecord]:
        return [r for r in self.records.values() if r.accepted_at is not None]

    # --- kinds --------------------------------------------------------------------------------

    def _message(self) -> Delivery:
        customer = self._chatty_customer()
        count = self.rng.choice((2, 3)) if self.rng.random() < 0.1 else 1
        count = min(count, self.target - self.produced)
        messages = [samples.text(customer.wa_id, f"pesan {self.produced + i}") for i in range(count)]
        profile = samples.profile(customer.wa_id, customer.name)
        payload = samples.envelope(messages=messages, contacts=[profile])
        events = [
            self._record("whatsapp", m["id"], "message", {"wa_id": customer.wa_id, "external_id": m["id"]})
            for m in messages
        ]
        body, headers = samples.encode(payload, APP_SECRET)
        return Delivery("/webhooks/whatsapp", body, headers, events)

    def _waha_message(self) -> Delivery:
        customer = self._chatty_customer()
        payload = samples.waha_message(customer.chat_id, f"pesan waha {self.produced}", name=customer.name)
        info = {"wa_id": customer.wa_id, "external_id": payload["payload"]["id"]}
        return self._waha(payload, "message", info)

    def _status(self) -> Delivery:
        sends = [s for s in self.cloud.snapshot() if s.callback]
        if not sends:
            return self._message()  # nothing sent yet: Meta has no status to report
        waiting = [s for s in sends if s.followup and "delivered" not in self._statuses.get(s.wamid, set())]
        if waiting and self.rng.random() < 0.7:
            send = self.rng.choice(waiting)
            unsent = [s for s in ("delivered", "read") if s not in self._statuses.get(send.wamid, set())]
            status = self.rng.choice(unsent)
        else:
            send = self.rng.choice(sends)
            left = [s for s in STATUS_ORDER if s not in self._statuses.get(send.wamid, set())]
            if not left:
                return self._message()
            status = left[0] if self.rng.random() < 0.8 else self.rng.choice(left)
        return self._status_of(send, status)

    def _status_of(self, send: Send, status: str) -> Delivery:
        self._statuses.setdefault(send.wamid, set()).add(status)
        entry = samples.status(send.wamid, status, send.to, callback=send.callback)
        payload = samples.envelope(statuses=[entry])
        info = {"wamid": send.wamid, "status": status, "callback": send.callback, "followup": send.followup}
        event = self._record("whatsapp", f"{send.wamid}:{status}", "status", info)
        body, headers = samples.encode(payload, APP_SECRET)
        return Delivery("/webhooks/whatsapp", body, headers, [event])

    def _label(self) -> Delivery:
        customer = self._chatty_customer()
        label_id = self.rng.choice(list(LABELS))
        pair = (customer.wa_id, label_id)
        last = self._label_actions.get(pair)
        if last is None:
            action = "added"
        elif self.rng.random() < 0.8:
            action = "removed" if last == "added" else "added"
        else:
            action = last
        self._label_actions[pair] = action
        at_ms = self._next_ms()
        payload = samples.waha_label_chat(action, customer.chat_id, label_id, LABELS[label_id], at_ms=at_ms)
        info = {"wa_id": customer.wa_id, "label": label_id, "action": action, "at_ms": at_ms}
        return self._waha(payload, f"label.chat.{'added' if action == 'added' else 'deleted'}", info)

    def _order(self) -> Delivery:
        ready = [o for o in self.orders if o.next_at <= self.produced]
        plan = self.rng.choice(ready) if ready and self.rng.random() < 0.75 else self._new_order()
        event_type, details = plan.steps.popleft()
        if plan.steps:
            plan.next_at = self.produced + self.order_gap + self.rng.randrange(self.order_gap)
        else:
            self.orders.remove(plan)
        customer = plan.customer
        common = {
            "phone": customer.typed_phone,
            "name": customer.name,
            "contact_id": customer.contact_ref,
            "event_id": f"evt-{self._run}-{self.produced}",
            "occurred_at": datetime.now(UTC).isoformat(),
        }
        if event_type == "contact.created":
            payload = samples.order_event(event_type, None, **common)
        else:
            payload = samples.order_event(event_type, plan.order_id, **common, **details)
        info = {"order_id": plan.order_id, "type": event_type, "phone": customer.typed_phone}
        info["wa_id"] = customer.wa_id
        if "estimated_delivery_date" in details:
            info["delivery_date"] = details["estimated_delivery_date"]
        event = self._record("orders", payload["id"], event_type, info)
        body, headers = samples.encode(payload, ORDER_SECRET, header="X-Signature-256")
        return Delivery("/webhooks/orders", body, headers, [event])

    def _new_order(self) -> OrderPlan:
        customer = self.rng.choice(self.customers)
        order_id = f"FI-{self._run}-{next(self._order_numbers):05d}"
        total = self.rng.randrange(50, 2000) * 1000
        today = datetime.now(TIMEZONE).date()
        shape = self.rng.random()
        steps: list[tuple[str, dict[str, Any]]] = [("order.created", {"total": total, "currency": "IDR"})]
        if shape < 0.05:
            steps.append(("order.cancelled", {}))
        else:
            steps.append(("order.paid", {"total": total}))
            if self.rng.random() < 0.2:
                steps.append(("order.updated", {"total": total + 1000}))
            if shape < 0.10:
                steps.append(("order.cancelled", {}))
            else:
                delivered_today = shape < 0.40
                date = today if delivered_today else today + timedelta(days=3)
                shipped = {
                    "courier": self.rng.choice(("JNE", "J&T", "SiCepat")),
                    "tracking_number": f"TRK{self.rng.getrandbits(40):012d}",
                    "estimated_delivery_date": date.isoformat(),
                }
                steps.append(("order.shipped", shipped))
                if not delivered_today:
                    # Today's deliveries are answered by the follow-up's "delivered" status instead.
                    steps.append(("order.received", {}))
        if customer.wa_id not in self._welcomed and self.rng.random() < 0.7:
            self._welcomed.add(customer.wa_id)
            steps.insert(0, ("contact.created", {}))
        elif customer.wa_id in self._welcomed and self.rng.random() < 0.1:
            steps.insert(0, ("contact.created", {}))  # told again: still one welcome
        plan = OrderPlan(order_id, customer, deque(steps), self.produced)
        self.orders.append(plan)
        return plan

    # --- helpers ------------------------------------------------------------------------------

    def _waha(self, payload: dict[str, Any], kind: str, info: dict[str, Any]) -> Delivery:
        event = self._record("waha", payload["id"], kind, info)
        body, headers = samples.waha_encode(payload, WAHA_HMAC_KEY)
        return Delivery("/webhooks/waha", body, headers, [event])

    def _record(self, source: str, key: str, kind: str, info: dict[str, Any]) -> EventRecord:
        record = EventRecord(source, key, kind, info)
        if (source, key) in self.records:
            raise RuntimeError(f"the stream made the same event twice: {source} {key}")
        self.records[(source, key)] = record
        self.produced += 1
        return record

    def _chatty_customer(self) -> Customer:
        # Some customers write much more than others.
        index = int(self.rng.expovariate(4 / len(self.customers)))
        return self.customers[min(index, len(self.customers) - 1)]

    def _next_ms(self) -> int:
        self._label_ms = max(self._label_ms + 1, int(time.time() * 1000))
        return self._label_ms


@dataclass
class SenderStats:
    deliveries: int = 0  # requests handed out (replays included)
    attempts: int = 0  # HTTP requests made (retries included)
    answers: Counter[str] = field(default_factory=Counter)  # "200", "503", "ConnectionError", ...
    duplicates_answered: int = 0  # events a 2xx called duplicate
    given_up: int = 0
    refused: list[str] = field(default_factory=list)
    first_sent_at: float | None = None
    last_accepted_at: float | None = None


class Sender:
    """``threads`` senders sharing the stream, paced at ``rate`` deliveries per second."""

    def __init__(
        self, traffic: Traffic, base_url: str, threads: int, rate: float, gate: threading.Event
    ) -> None:
        self.traffic, self.base_url, self.rate, self.gate = traffic, base_url, rate, gate
        self.stats = SenderStats()
        self._lock = threading.Lock()
        # Daemons: an interrupted run (Ctrl-C) cleans up and exits without sending the rest.
        self._threads = [
            threading.Thread(target=self._run, name=f"sender-{i}", daemon=True) for i in range(threads)
        ]
        self._next = 0.0

    def start(self) -> Sender:
        self.stats.first_sent_at = time.time()
        for thread in self._threads:
            thread.start()
        return self

    def join(self) -> None:
        for thread in self._threads:
            thread.join()

    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def _run(self) -> None:
        session = requests.Session()
        try:
            while True:
                self.gate.wait()  # closed while the system is too far behind (backpressure)
                with self._lock:
                    delivery = self.traffic.next_delivery()
                    if delivery is None:
                        return
                    self.stats.deliveries += 1
                    due = self._next = max(self._next + 1 / self.rate, time.monotonic())
                time.sleep(max(0.0, due - time.monotonic()))
                self._deliver(session, delivery)
        finally:
            session.close()

    def _deliver(self, session: requests.Session, delivery: Delivery) -> None:
        started, backoff = time.monotonic(), 0.2
        while True:
            outcome = self._attempt(session, delivery)
            if outcome is not None:
                return
            if time.monotonic() - started > GIVE_UP_SECONDS:
                with self._lock:
                    self.stats.given_up += 1
                return
            time.sleep(random.uniform(backoff / 2, backoff))
            backoff = min(backoff * 2, 3.0)

    def _attempt(self, session: requests.Session, delivery: Delivery) -> bool | None:
        """True when answered 2xx, False when refused for good, None to try again."""
        try:
            answer = session.post(
                self.base_url + delivery.path, data=delivery.body, headers=delivery.headers, timeout=(3, 20)
            )
        except requests.RequestException as exc:
            with self._lock:
                self.stats.attempts += 1
                self.stats.answers[type(exc).__name__] += 1
            return None
        now = time.time()
        with self._lock:
            self.stats.attempts += 1
            self.stats.answers[str(answer.status_code)] += 1
            if answer.status_code in (429,) or answer.status_code >= 500:
                return None
            if not 200 <= answer.status_code < 300:
                kinds = ",".join(sorted({e.kind for e in delivery.events}))
                self.stats.refused.append(f"{answer.status_code} {kinds}: {answer.text[:300]}")
                return False
            self.stats.duplicates_answered += _duplicates(answer)
            for event in delivery.events:
                if event.accepted_at is None:
                    event.accepted_at = now
            self.stats.last_accepted_at = now
        return True


def _duplicates(answer: requests.Response) -> int:
    try:
        document = answer.json()
    except ValueError:
        return 0
    if document.get("status") == "duplicate":
        return 1
    return int(document.get("duplicates") or 0)
