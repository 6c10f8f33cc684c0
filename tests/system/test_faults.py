"""Faults on the real parts: killed workers, a Redis restart, workers racing on a new number.

Every test runs its own ``celery worker`` (and, where the sweeper is needed, ``celery beat``)
processes against the test database and the session's private redis-server, and checks what a
user would see afterwards through the query API: one contact per person, every accepted message
stored once, conversation counters that were incremented once per message.

To stop a task mid-way the test holds a PostgreSQL lock the task needs; the worker's sessions
carry ``application_name`` (libpq's ``PGAPPNAME``) so that ``pg_stat_activity`` shows which
worker is waiting on it.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Callable

import pytest
import redis
from sqlalchemy import func, select, text

from models import Contact, ContactIdentity, Conversation, Deal, InboxEvent, Message
from models.db import get_engine, session_scope
from testkit import samples
from testkit.processes import CeleryProcess, wait_for
from tests.system.conftest import REDIS, SHARED

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def new_wa_id() -> str:
    """A valid Indonesian mobile number nobody has written from yet in this run."""
    return f"62812{uuid.uuid4().int % 10**8:08d}"


def wamid_of(payload: dict) -> str:
    return payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"]


def post(client, payload) -> dict:
    body, headers = samples.encode(payload)
    answer = client.post("/webhooks/whatsapp", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def inbox() -> list[InboxEvent]:
    with session_scope() as session:
        return list(session.scalars(select(InboxEvent).order_by(InboxEvent.id)))


def processed(expected: int) -> Callable[[], bool]:
    def check() -> bool:
        events = inbox()
        failed = [e for e in events if e.state == "failed"]
        assert not failed, f"events failed: {[(e.id, e.last_error) for e in failed]}"
        return len(events) == expected and all(e.state == "processed" for e in events)

    return check


def count(model) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(model))


def backends(application_name: str, *, waiting: bool = False) -> list[int]:
    """PostgreSQL sessions of one worker in the test database (optionally: waiting on a lock)."""
    query = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = :name"
    if waiting:
        query += " AND wait_event_type = 'Lock'"
    with get_engine().connect() as connection:
        return list(connection.scalars(text(query), {"name": application_name}))


def terminate_backend(pid: int) -> None:
    with get_engine().connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        connection.commit()


class TableLock:
    """An ACCESS EXCLUSIVE lock on a table, held by the test in its own transaction."""

    def __init__(self, table: str) -> None:
        self.connection = get_engine().connect()
        self.transaction = self.connection.begin()
        self.connection.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))

    def release(self) -> None:
        if not self.connection.closed:
            self.transaction.rollback()
            self.connection.close()


def restore_redis() -> None:
    """Other tests need the session's redis-server: start it again if a test left it stopped."""
    if REDIS.process is None or REDIS.process.poll() is not None:
        REDIS.start()


def unacknowledged() -> int:
    """Messages some worker has taken from Redis and not yet acknowledged."""
    with redis.Redis.from_url(REDIS.url) as client:
        return client.hlen("unacked")


@pytest.fixture
def alone():
    """The session's shared workers (the ``worker`` fixture's and the routing worker) stop during
    the test, so that the tasks it stops and kills are in its own worker (and so that a broker
    restart finds them holding nothing); they start again afterwards. A restart, not remote
    control: a queue cancelled and added back with cancel_consumer/add_consumer is forgotten at
    the worker's next broker reconnection (celery keeps it out of its ``-Q`` selection)."""
    paused = [process for process in SHARED if process.process.poll() is None]
    for process in paused:
        process.stop()
    yield
    restore_redis()
    for process in paused:
        process.restart().wait_ready()


@pytest.fixture
def spawn():
    """Start ``celery worker``/``beat`` processes that are stopped (or killed) after the test."""
    started: list[CeleryProcess] = []

    def start(kind: str, **options) -> CeleryProcess:
        process = getattr(CeleryProcess, kind)(**options)
        started.append(process)
        return process

    yield start
    for process in reversed(started):
        process.stop()
        print(f"--- {process.name} ---\n{process.output()}")


class Person:
    """What the query API tells about the contact behind one WhatsApp number."""

    def __init__(self, client, headers, wa_id: str) -> None:
        page = client.get("/api/contacts", params={"phone": f"+{wa_id}"}, headers=headers)
        assert page.status_code == 200, page.text
        self.contacts = page.json()["items"]
        assert len(self.contacts) == 1, f"{wa_id} should be one contact: {self.contacts}"
        contact_id = self.contacts[0]["id"]
        self.detail = client.get(f"/api/contacts/{contact_id}", headers=headers).json()
        self.messages = client.get(
            f"/api/contacts/{contact_id}/messages", params={"limit": 500}, headers=headers
        ).json()["items"]

    @property
    def external_ids(self) -> list[str]:
        return sorted(m["external_id"] for m in self.messages)

    @property
    def message_counts(self) -> list[int]:
        return [c["message_count"] for c in self.detail["conversations"]]


# ---------------------------------------------------------------------------------------------
# Workers killed in the middle of a task
# ---------------------------------------------------------------------------------------------


def test_worker_killed_mid_task_leaves_nothing_half_done_and_the_sweeper_finishes(
    alone, client, admin_headers, spawn
):
    wa_id = new_wa_id()
    payload = samples.inbound_text(wa_id, "Budi", "Halo, masih ada stok?")
    first_pg_name = f"faults-{uuid.uuid4().hex[:6]}"

    lock = TableLock("contact_identities")
    try:
        assert post(client, payload) == {"accepted": 1, "duplicates": 0}
        first = spawn("worker", concurrency=1, PGAPPNAME=first_pg_name).wait_ready()
        wait_for(
            lambda: backends(first_pg_name, waiting=True),
            30,
            "the task to be stuck in the middle, waiting for contact_identities",
        )
        first.kill()  # SIGKILL, main process and pool child alike
    finally:
        lock.release()

    # Once it can run, the dead worker's session finds its client gone and rolls back.
    wait_for(lambda: not backends(first_pg_name), 30, "the killed worker's session to end")
    [event] = inbox()
    assert (event.state, event.attempts) == ("pending", 0)
    assert count(Contact) == 0 and count(Message) == 0, "the killed task committed something"
    listed = client.get("/api/contacts", params={"phone": f"+{wa_id}"}, headers=admin_headers)
    assert listed.json()["items"] == []

    # The broker still holds the killed task unacknowledged (for visibility_timeout): only the
    # sweeper brings the event back now.
    spawn("worker", concurrency=2).wait_ready()
    spawn("beat")
    wait_for(processed(1), 60, "the event processed after the sweeper re-enqueued it")

    [event] = inbox()
    assert event.attempts == 1
    person = Person(client, admin_headers, wa_id)
    assert person.external_ids == [wamid_of(payload)]
    assert person.message_counts == [1]
    assert person.detail["open_deal"] is not None
    assert sorted(i["kind"] for i in person.detail["identities"]) == ["phone", "wa_id"]
    assert count(Contact) == 1 and count(Message) == 1 and count(Deal) == 1


def test_pool_child_killed_mid_task_is_redelivered_and_processed_once(alone, client, admin_headers, spawn):
    wa_id = new_wa_id()
    payload = samples.inbound_text(wa_id, "Siti", "Permisi, mau tanya harga")
    pg_name = f"faults-{uuid.uuid4().hex[:6]}"

    # No beat in this test: only task_reject_on_worker_lost can bring the task back.
    worker = spawn("worker", concurrency=1, PGAPPNAME=pg_name).wait_ready()
    lock = TableLock("contact_identities")
    try:
        assert post(client, payload) == {"accepted": 1, "duplicates": 0}
        [stuck] = wait_for(lambda: backends(pg_name, waiting=True), 30, "the task to be stuck")
        [child] = worker.child_pids()

        # Freeze the child, end its database session, then kill it. A dead client's session
        # ends by itself as soon as PostgreSQL reads from it; this one is parked in the lock
        # wait the test staged, and would otherwise keep the inbox row locked for a moment
        # after the child died, which a fast redelivery would take for a twin still at work.
        os.kill(child, signal.SIGSTOP)
        terminate_backend(stuck)
        wait_for(lambda: stuck not in backends(pg_name), 30, "the child's session to end")
        os.kill(child, signal.SIGKILL)

        # The redelivered task runs in a new pool child and reaches the same point again.
        wait_for(
            lambda: [pid for pid in backends(pg_name, waiting=True) if pid != stuck],
            60,
            "the redelivered task to reach the lock",
        )
        assert worker.process.poll() is None, "the worker's main process should survive"
        assert child not in worker.child_pids()
        [event] = inbox()
        assert event.state == "pending"
    finally:
        lock.release()
    wait_for(processed(1), 60, "the redelivered task to finish")

    assert "WorkerLostError" in worker.log_path.read_text(errors="replace")
    [event] = inbox()
    assert event.attempts == 1
    person = Person(client, admin_headers, wa_id)
    assert person.external_ids == [wamid_of(payload)]
    assert person.message_counts == [1]
    assert count(Contact) == 1 and count(Message) == 1 and count(Deal) == 1


# ---------------------------------------------------------------------------------------------
# The broker goes away
# ---------------------------------------------------------------------------------------------


def test_redis_restart_loses_no_accepted_event(client, admin_headers, spawn):
    numbers = [new_wa_id() for _ in range(3)]
    sent: list[str] = []

    def send(i: int) -> None:
        payload = samples.inbound_text(numbers[i % 3], f"Pelanggan {i % 3}", f"pesan {i}")
        sent.append(wamid_of(payload))
        assert post(client, payload) == {"accepted": 1, "duplicates": 0}

    spawn("worker", concurrency=2).wait_ready()
    stale = unacknowledged()  # left by workers killed in earlier tests, until visibility_timeout
    try:
        for i in range(5):
            send(i)
        # Settled before the broker goes: a worker holding unacknowledged tasks when Redis goes
        # away exits with celery 5.7.0 (see the next test), which is not what this one is about.
        wait_for(processed(5), 30, "the first events processed")
        wait_for(lambda: unacknowledged() == stale, 30, "the first tasks acknowledged")
        REDIS.stop()  # SIGKILL, nothing on disk: whatever was queued in Redis is gone
        for i in range(5, 15):
            send(i)  # still 200: the event is safe in the inbox
        REDIS.start()
        for i in range(15, 20):
            send(i)
    finally:
        restore_redis()
    spawn("beat")  # the sweeper publishes what the broker lost or never got

    wait_for(processed(len(sent)), 90, "every accepted event processed after the restart")
    assert len(set(sent)) == 20
    assert all(e.attempts == 1 for e in inbox())
    stored: list[str] = []
    for i, wa_id in enumerate(numbers):
        person = Person(client, admin_headers, wa_id)
        stored += person.external_ids
        assert sum(person.message_counts) == len(sent[i::3])
    assert sorted(stored) == sorted(sent)
    assert count(Message) == len(sent) and count(Contact) == len(numbers)


# celery 5.7.0 failed this (the worker exited with an AttributeError while restoring its
# unacknowledged messages); pyproject.toml pins celery below 5.7 for it.
def test_worker_with_tasks_in_flight_survives_a_redis_restart(alone, client, admin_headers, spawn):
    numbers = [new_wa_id() for _ in range(3)]
    pg_name = f"faults-{uuid.uuid4().hex[:6]}"

    worker = spawn("worker", concurrency=2, PGAPPNAME=pg_name).wait_ready()
    lock = TableLock("contact_identities")
    try:
        for wa_id in numbers:
            assert post(client, samples.inbound_text(wa_id, "Dewi", "Halo"))["accepted"] == 1
        wait_for(lambda: len(backends(pg_name, waiting=True)) == 2, 30, "two tasks in flight")
        REDIS.stop()  # with two tasks running and one prefetched, none acknowledged
        lock.release()
        REDIS.start()
    finally:
        lock.release()
        restore_redis()

    def reconnected_or_exited() -> bool:
        log = worker.log_path.read_text(errors="replace")
        return worker.process.poll() is not None or log.count("Connected to redis") >= 2

    wait_for(reconnected_or_exited, 60, "the worker to reconnect (or exit)")
    log = worker.log_path.read_text(errors="replace").splitlines()
    crash = "\n".join(line[:400] for line in log if "CRITICAL" in line)
    assert worker.process.poll() is None, f"the worker exited when the broker went away:\n{crash}"

    spawn("beat")
    wait_for(processed(len(numbers)), 60, "every event processed by the surviving worker")
    assert worker.process.poll() is None
    assert all(e.attempts == 1 for e in inbox())
    for wa_id in numbers:
        assert Person(client, admin_headers, wa_id).message_counts == [1]
    assert count(Message) == len(numbers) and count(Contact) == len(numbers)


# ---------------------------------------------------------------------------------------------
# Concurrency
# ---------------------------------------------------------------------------------------------


def test_workers_racing_on_new_numbers_make_one_contact_each(client, admin_headers, spawn):
    numbers = [new_wa_id() for _ in range(4)]
    per_number = 20
    workers = [spawn("worker", concurrency=4) for _ in range(2)]
    for worker in workers:
        worker.wait_ready()

    sent: dict[str, list[str]] = {}
    for wa_id in numbers:
        messages = [samples.text(wa_id, f"pesan {n}") for n in range(per_number)]
        sent[wa_id] = [m["id"] for m in messages]
        payload = samples.envelope(messages=messages, contacts=[samples.profile(wa_id, "Andi")])
        assert post(client, payload) == {"accepted": per_number, "duplicates": 0}

    wait_for(processed(len(numbers) * per_number), 90, "every message processed")
    assert all(e.attempts == 1 for e in inbox())
    for wa_id in numbers:
        person = Person(client, admin_headers, wa_id)
        assert person.external_ids == sorted(sent[wa_id])
        assert person.message_counts == [per_number]
        assert person.detail["open_deal"] is not None
        assert sorted(i["kind"] for i in person.detail["identities"]) == ["phone", "wa_id"]
    # No duplicate was created and merged away behind the scenes either.
    assert count(Contact) == len(numbers)
    assert count(ContactIdentity) == 2 * len(numbers)
    assert count(Conversation) == len(numbers) and count(Deal) == len(numbers)
