"""What the run achieved, from the database and from what the fake Cloud API received.

Events: every event the sender got a 2xx for must have its inbox row ``processed``; one left
``pending`` or ``failed`` is lost.

Automated messages: the messages the accepted events call for, derived with the system's own
documented rules (README, "Automated order messages"):

- ``contact.created``: one welcome per contact, however often it is told;
- an order step's message (``order.created`` -> order_created, ``order.paid`` -> order_paid,
  ``order.shipped`` -> order_delivery, ``order.received`` -> order_received), unless a later step
  was already known when its event was processed (the inbox rows' ``processed_at`` give that
  order: one order's events are serialised by the order's row lock) or the order was cancelled;
- the delivery follow-up of an order shipped for delivery today (beat fires it at once);
- "was it what you expected?" (order_received) for a follow-up whose ``delivered``/``read``
  status webhook was accepted.

An expected message is *sent* when its outbox row is ``sent``, *unconfirmed (at-most-once)* when
it was given up as unconfirmed (no answer after the request went out, or its sender died while
sending: deliberately never resent), *cancelled with its order*, and otherwise *lost* (never
queued, or failed, blocked, left queued). *Sent twice* counts the fake's acceptances beyond the
first per outbox id (``biz_opaque_callback_data``) and per cause (the outbox ``dedupe_key``,
e.g. ``order:FI-…:order_paid``).

*Out of order* counts the messages of one order that reached the fake after a message of a later
stage of the same order (order_created, order_paid, order_delivery, the delivery follow-up,
order_received, in that order), by the fake's acceptance order.

State mismatches are consistency checks on what the events built: each accepted inbound message
stored once, each conversation's ``message_count`` equal to its messages, one contact per
number, each (contact, label) active exactly when its newest event (by event time) added it,
each order at the furthest stage its events reached.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from faults.cloud import RecordingCloudApi
from faults.traffic import EventRecord, Traffic
from integrations.whatsapp.cloud import outbox_callback, outbox_id_from_callback
from queueing import names

RANK = {"created": 1, "paid": 2, "shipped": 3, "received": 4}
STAGE_OF = {"order.created": "created", "order.paid": "paid", "order.shipped": "shipped"}
STAGE_OF["order.received"] = "received"
TRIGGER_OF = {
    "order.created": "order_created",
    "order.paid": "order_paid",
    "order.shipped": "order_delivery",
    "order.received": "order_received",
}
# The stage order of one order's messages, as its customer must get them.
STAGE_OF_TRIGGER = {
    "order_created": 1,
    "order_paid": 2,
    "order_delivery": 3,
    "order_followup_delivery": 4,
    "order_received": 5,
}


def _rows(sql: str, **params: Any) -> list[Any]:
    from models.db import get_engine

    with get_engine().connect() as connection:
        return list(connection.execute(text(sql), params))


def drain_state() -> dict[str, int]:
    """What is still on its way: pending inbox rows, unsettled outbox rows, due follow-ups."""
    [row] = _rows(
        """
        SELECT (SELECT count(*) FROM inbox_events WHERE state = 'pending') AS pending,
               (SELECT count(*) FROM outbound_messages WHERE state IN ('queued', 'sending')) AS unsettled,
               (SELECT count(*) FROM delivery_followups
                 WHERE state = 'scheduled' AND due_at <= now() AT TIME ZONE 'UTC') AS due_followups
        """
    )
    return {"pending": row.pending, "unsettled": row.unsettled, "due_followups": row.due_followups}


def sends_waiting_for_a_slot() -> int:
    """Outbox rows claimed by a sender that has not dispatched its request yet."""
    [row] = _rows(
        "SELECT count(*) AS n FROM outbound_messages WHERE state = 'sending' AND dispatched_at IS NULL"
    )
    return row.n


def drained() -> bool:
    return not any(drain_state().values())


@dataclass
class Figures:
    accepted: int = 0
    processed: int = 0
    lost_events: list[str] = field(default_factory=list)
    failed_events: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)  # accepted events by source/kind
    expected_messages: Counter[str] = field(default_factory=Counter)  # by trigger
    suppressed_by_order: int = 0  # steps whose message the out-of-order rule withholds
    sent: int = 0
    unconfirmed_reached: int = 0  # unconfirmed, but the fake has it: the customer got it
    unconfirmed_not_reached: int = 0  # unconfirmed, and the fake never got it
    unconfirmed_causes: Counter[str] = field(default_factory=Counter)
    cancelled_with_order: int = 0
    lost_messages: list[str] = field(default_factory=list)
    # Outbox rows no accepted event calls for by the order rules (e.g. routing's replies), by
    # trigger and state: shown, and counted in "sent twice", but not expected.
    other_messages: Counter[str] = field(default_factory=Counter)
    sent_twice_by_id: int = 0
    sent_twice_by_cause: int = 0
    sent_twice_detail: list[str] = field(default_factory=list)
    sent_without_row: int = 0  # fake acceptances naming no outbox row
    marked_sent_not_received: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)  # after a later stage of its order
    confirmed_by_status: int = 0
    fake_accepted: int = 0
    fake_requests: int = 0
    outbox_states: Counter[str] = field(default_factory=Counter)
    mismatches: dict[str, list[str]] = field(default_factory=dict)

    @property
    def unconfirmed(self) -> int:
        return self.unconfirmed_reached + self.unconfirmed_not_reached

    @property
    def sent_twice(self) -> int:
        return max(self.sent_twice_by_id, self.sent_twice_by_cause)

    @property
    def mismatch_count(self) -> int:
        return sum(len(found) for found in self.mismatches.values())


def collect(traffic: Traffic, cloud: RecordingCloudApi) -> Figures:
    figures = Figures()
    accepted = traffic.accepted()
    inbox = {
        (r.source, r.dedupe_key): r
        for r in _rows("SELECT source, dedupe_key, state, processed_at FROM inbox_events")
    }
    figures.accepted = len(accepted)
    for event in accepted:
        figures.by_kind[_kind_name(event)] += 1
        row = inbox.get((event.source, event.key))
        if row is not None and row.state == "processed":
            figures.processed += 1
        else:
            state = row.state if row is not None else "no inbox row"
            figures.failed_events += state == "failed"
            figures.lost_events.append(f"{event.source}/{event.kind} {event.key}: {state}")
    processed_at = {
        (e.source, e.key): inbox[(e.source, e.key)].processed_at
        for e in accepted
        if (e.source, e.key) in inbox and inbox[(e.source, e.key)].state == "processed"
    }

    outbox = {r.dedupe_key: r for r in _rows(_OUTBOX)}
    by_id = {r.id: r for r in outbox.values()}
    figures.outbox_states = Counter(r.state for r in outbox.values())
    sends = cloud.snapshot()
    figures.fake_accepted, figures.fake_requests = len(sends), cloud.attempts
    received = Counter(s.callback for s in sends)
    answered = {s.callback for s in sends if s.answered}

    expected, cancelled_orders = _expected(figures, accepted, processed_at, by_id)
    _settle(figures, expected, cancelled_orders, outbox, received, answered)
    figures.other_messages = Counter(
        f"{row.trigger} {row.state}{' (unconfirmed)' if (row.error or {}).get('unconfirmed') else ''}"
        for key, row in outbox.items()
        if key not in expected
    )
    _duplicates(figures, sends, by_id)
    figures.out_of_order = _out_of_order(sends, by_id)
    figures.mismatches = _consistency(accepted, processed_at)
    return figures


_OUTBOX = """
    SELECT m.id, m.dedupe_key, m.trigger, m.state, m.error, m.external_id, o.external_id AS order_ref
    FROM outbound_messages m LEFT JOIN orders o ON o.id = m.order_id
"""


def _kind_name(event: EventRecord) -> str:
    if event.source == "orders":
        return "order event"
    if event.source == "waha":
        return "WAHA message" if event.kind == "message" else "WAHA label event"
    return "Cloud API message" if event.kind == "message" else "Cloud API status"


def _expected(
    figures: Figures,
    accepted: list[EventRecord],
    processed_at: dict[tuple[str, str], datetime],
    outbox_by_id: dict[int, Any],
) -> tuple[set[str], set[str]]:
    """The dedupe keys of the messages the accepted events call for; and the cancelled orders."""
    expected: set[str] = set()
    late = datetime.max.replace(tzinfo=None)

    def when(event: EventRecord) -> datetime:
        moment = processed_at.get((event.source, event.key))
        return moment.replace(tzinfo=None) if moment is not None else late

    # Welcomes: one per contact (the contact as identity resolution found it).
    welcomed = {e.info["wa_id"] for e in accepted if e.kind == "contact.created"}
    contacts = _contact_ids(welcomed)
    for wa_id in welcomed:
        expected.add(f"contact:{contacts.get(wa_id, '?' + wa_id)}:contact_created")

    by_order: dict[str, list[EventRecord]] = defaultdict(list)
    for event in accepted:
        if event.source == "orders" and event.kind != "contact.created":
            by_order[event.info["order_id"]].append(event)
    cancelled: set[str] = set()
    today = datetime.now(UTC).astimezone(_jakarta()).date().isoformat()
    for order_id, events in by_order.items():
        current: int | None = None
        for event in sorted(events, key=when):
            previous = 0 if current is None else (len(RANK) + 1 if order_id in cancelled else current)
            current = current or 1
            if event.kind == "order.cancelled":
                cancelled.add(order_id)
            stage = STAGE_OF.get(event.kind)
            if stage is None or order_id in cancelled:
                continue
            current = max(current, RANK[stage])
            if RANK[stage] >= previous:
                expected.add(f"order:{order_id}:{TRIGGER_OF[event.kind]}")
            else:
                figures.suppressed_by_order += 1
            if event.kind == "order.shipped" and event.info.get("delivery_date") == today:
                expected.add(f"order:{order_id}:order_followup_delivery")

    # A delivered (or read) follow-up asks how the order was.
    for event in accepted:
        if event.kind != "status" or not event.info.get("followup") or event.info["status"] == "sent":
            continue
        callback = event.info.get("callback") or ""
        row = outbox_by_id.get(int(callback[7:])) if callback[7:].isdigit() else None
        if row is not None and row.order_ref and row.order_ref not in cancelled:
            expected.add(f"order:{row.order_ref}:order_received")
    for key in expected:
        figures.expected_messages[key.rsplit(":", 1)[1]] += 1
    return expected, cancelled


def _settle(
    figures: Figures,
    expected: set[str],
    cancelled_orders: set[str],
    outbox: dict[str, Any],
    received: Counter[str | None],
    answered: set[str | None],
) -> None:
    for key in sorted(expected):
        row = outbox.get(key)
        if row is None:
            figures.lost_messages.append(f"{key}: never queued")
            continue
        reached = received.get(outbox_callback(row.id), 0) > 0
        error = row.error or {}
        if row.state == "sent":
            figures.sent += 1
            if not reached:
                figures.marked_sent_not_received.append(key)
            elif outbox_callback(row.id) not in answered:
                figures.confirmed_by_status += 1  # the worker never had an answer: a status told
        elif row.state == "failed" and error.get("unconfirmed"):
            cause = str(error.get("message") or "")
            figures.unconfirmed_causes[_cause(cause)] += 1
            if reached:
                figures.unconfirmed_reached += 1
            else:
                figures.unconfirmed_not_reached += 1
        elif row.state == "cancelled" and key.split(":")[1] in cancelled_orders:
            figures.cancelled_with_order += 1
        else:
            figures.lost_messages.append(f"{key}: {row.state} {error}")


def _cause(message: str) -> str:
    if "stopped while sending" in message:
        return "sender died mid-send (outbox sweeper)"
    if "ReadTimeout" in message or "timed out" in message:
        return "read timeout"
    if "Connection" in message or "RemoteDisconnected" in message:
        return "connection dropped"
    return message[:60] or "?"


def _duplicates(figures: Figures, sends: list[Any], by_id: dict[int, Any]) -> None:
    per_id = Counter(outbox_id_from_callback(s.callback) for s in sends)
    for outbound_id, count in per_id.items():
        if outbound_id not in by_id:
            figures.sent_without_row += count
            continue
        if count > 1:
            figures.sent_twice_by_id += count - 1
            row = by_id[outbound_id]
            figures.sent_twice_detail.append(f"{outbox_callback(row.id)} ({row.dedupe_key}) x{count}")
    per_cause = Counter(by_id[key].dedupe_key for key in per_id.elements() if key in by_id)
    figures.sent_twice_by_cause = sum(count - 1 for count in per_cause.values() if count > 1)


def _out_of_order(sends: list[Any], by_id: dict[int, Any]) -> list[str]:
    """Messages the fake accepted after one of a later stage of the same order."""
    latest: dict[str, tuple[int, str]] = {}  # order -> (highest stage so far, its trigger)
    found = []
    for send in sends:  # in the order the fake accepted them
        row = by_id.get(outbox_id_from_callback(send.callback))
        if row is None or row.order_ref is None or row.trigger not in STAGE_OF_TRIGGER:
            continue
        stage = STAGE_OF_TRIGGER[row.trigger]
        before = latest.get(row.order_ref)
        if before is not None and stage < before[0]:
            found.append(f"order {row.order_ref}: {row.trigger} after {before[1]}")
        elif before is None or stage > before[0]:
            latest[row.order_ref] = (stage, row.trigger)
    return found


def _consistency(
    accepted: list[EventRecord], processed_at: dict[tuple[str, str], datetime]
) -> dict[str, list[str]]:
    done = [e for e in accepted if (e.source, e.key) in processed_at]
    found: dict[str, list[str]] = {}

    # Each accepted inbound message stored exactly once.
    wanted = [e.info["external_id"] for e in done if e.kind == "message"]
    stored = {
        r.external_id: r.n
        for r in _rows(
            "SELECT external_id, count(*) AS n FROM messages WHERE direction = 'inbound' GROUP BY external_id"
        )
    }
    found["inbound message not stored once"] = [
        f"{m}: {stored.get(m, 0)}" for m in wanted if stored.get(m) != 1
    ]

    found["conversation message_count != its messages"] = [
        f"conversation {r.id}: message_count {r.message_count}, messages {r.n}"
        for r in _rows(
            """
            SELECT c.id, c.message_count, count(m.id) AS n
            FROM conversations c LEFT JOIN messages m ON m.conversation_id = c.id
            GROUP BY c.id, c.message_count HAVING c.message_count <> count(m.id)
            """
        )
    ]

    numbers = {e.info["wa_id"] for e in done if "wa_id" in e.info}
    live = "SELECT phone_e164 FROM contacts WHERE merged_into_id IS NULL AND phone_e164 IS NOT NULL"
    contacts = Counter(r.phone_e164 for r in _rows(live))
    found["number without exactly one contact"] = [
        f"+{n}: {contacts.get('+' + n, 0)} contacts" for n in sorted(numbers) if contacts.get("+" + n) != 1
    ]

    found["label state != newest event"] = _label_mismatches(accepted, processed_at)
    found["order stage != furthest step"] = _stage_mismatches(accepted, processed_at)
    return {name: items for name, items in found.items() if items}


Processed = dict[tuple[str, str], datetime]


def _label_mismatches(accepted: list[EventRecord], processed_at: Processed) -> list[str]:
    newest: dict[tuple[str, str], EventRecord] = {}
    incomplete: set[tuple[str, str]] = set()
    for event in accepted:
        if not event.kind.startswith("label.chat."):
            continue
        pair = (event.info["wa_id"], event.info["label"])
        if (event.source, event.key) not in processed_at:
            incomplete.add(pair)  # a lost event is counted as lost, not as a wrong state
        if pair not in newest or event.info["at_ms"] > newest[pair].info["at_ms"]:
            newest[pair] = event
    actual = {
        (r.phone[1:], r.label): r.active
        for r in _rows(
            """
            SELECT c.phone_e164 AS phone, l.external_id AS label, cl.active
            FROM contact_labels cl JOIN contacts c ON c.id = cl.contact_id JOIN labels l ON l.id = cl.label_id
            WHERE l.session = 'default'
            """
        )
    }
    return [
        f"+{pair[0]} label {pair[1]}: active={actual.get(pair)}, newest event {event.info['action']}"
        for pair, event in sorted(newest.items())
        if pair not in incomplete and actual.get(pair) != (event.info["action"] == "added")
    ]


def _stage_mismatches(accepted: list[EventRecord], processed_at: Processed) -> list[str]:
    furthest: dict[str, str] = {}
    incomplete: set[str] = set()
    for event in accepted:
        if event.source != "orders" or event.kind == "contact.created":
            continue
        order_id = event.info["order_id"]
        if (event.source, event.key) not in processed_at:
            incomplete.add(order_id)
        stage = "cancelled" if event.kind == "order.cancelled" else STAGE_OF.get(event.kind, "created")
        now = furthest.get(order_id, "created")
        if now != "cancelled" and (stage == "cancelled" or RANK[stage] > RANK[now]):
            furthest[order_id] = stage
        else:
            furthest.setdefault(order_id, now)
    actual = {r.external_id: r.stage for r in _rows("SELECT external_id, stage FROM orders")}
    return [
        f"{order_id}: stage {actual.get(order_id)}, furthest step {stage}"
        for order_id, stage in sorted(furthest.items())
        if order_id not in incomplete and actual.get(order_id) != stage
    ]


def _contact_ids(wa_ids: set[str]) -> dict[str, int]:
    if not wa_ids:
        return {}
    rows = _rows(
        "SELECT id, phone_e164 FROM contacts WHERE merged_into_id IS NULL AND phone_e164 = ANY(:phones)",
        phones=[f"+{w}" for w in wa_ids],
    )
    return {r.phone_e164[1:]: r.id for r in rows}


def _jakarta():  # type: ignore[no-untyped-def]
    from zoneinfo import ZoneInfo

    return ZoneInfo("Asia/Jakarta")


def worker_activity(log_texts: list[str]) -> dict[str, int]:
    """From the worker logs: what the sweepers published again, and how the ingest and send
    tasks ended (a duplicate task, redelivered or re-published, ends ``skipped``)."""
    import json

    totals = {"inbox events re-enqueued by the sweeper": 0, "outbox rows re-published by the sweeper": 0}
    sweeps = {
        "re-enqueued stale inbox events": "inbox events re-enqueued by the sweeper",
        "re-published stale outbox rows": "outbox rows re-published by the sweeper",
    }
    tasks = {names.PROCESS_INBOX_EVENT: "ingest", names.SEND_OUTBOUND: "send"}
    for log in log_texts:
        for line in log.splitlines():
            if "stale" not in line and "succeeded in" not in line:
                continue
            try:
                record = json.loads(line[line.index("{") :])
            except ValueError:
                continue
            name = sweeps.get(record.get("message", ""))
            if name:
                totals[name] += int(record.get("count", 0))
                continue
            data = record.get("data") or {}
            task = tasks.get(data.get("name", ""))
            if task:
                outcome = f"{task} tasks {str(data.get('return_value', '?')).strip(chr(39))}"
                totals[outcome] = totals.get(outcome, 0) + 1
    return totals


class Backpressure:
    """Holds the sender while the inbox backlog is longer than the workers clear in half of
    INBOX_SWEEP_AFTER_SECONDS (at their rate over the last ten seconds; at least ``floor``
    events). A backlog older than that would have the sweeper re-publish events that are only
    queued, not lost, and the run would measure that amplification instead of the faults."""

    def __init__(self, sweep_after_seconds: float, floor: int = 50, *, enabled: bool = True) -> None:
        import threading

        self.sweep_after, self.floor, self.enabled = sweep_after_seconds, floor, enabled
        self.gate = threading.Event()
        self.gate.set()
        self.paused_seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="backpressure", daemon=True)

    def start(self) -> Backpressure:
        if self.enabled:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.gate.set()

    def _run(self) -> None:
        import time
        from collections import deque

        history: deque[tuple[float, int]] = deque()
        last = time.monotonic()
        while not self._stop.wait(0.5):
            now = time.monotonic()
            if not self.gate.is_set():
                self.paused_seconds += now - last
            last = now
            try:
                [row] = _rows(
                    "SELECT count(*) FILTER (WHERE state = 'pending') AS pending, "
                    "count(*) FILTER (WHERE state <> 'pending') AS done FROM inbox_events"
                )
            except Exception:
                continue  # the monitor's connection was terminated too: keep the gate as it is
            history.append((now, row.done))
            while history and now - history[0][0] > 10:
                history.popleft()
            elapsed = now - history[0][0]
            rate = (row.done - history[0][1]) / elapsed if elapsed >= 2 else 0.0
            limit = max(self.floor, rate * self.sweep_after / 2)
            if row.pending > limit:
                self.gate.clear()
            else:
                self.gate.set()
