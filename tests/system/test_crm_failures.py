"""The Odoo sync after a failure on our side, once Odoo has answered: nothing posted twice.

Odoo did the write, then our side failed before it was recorded: the database connection of the
worker is killed (``pg_terminate_backend``) while it saves the id Odoo handed out, or the task's
soft time limit strikes while Odoo's answer is on its way. The retry must check Odoo for what the
first attempt made (the partner by our reference, the note and the log by their marker) instead
of writing again. Counted in the fake Odoo (a real HTTP server, testkit/fakes/odoo.py) with the
real sync worker: a Celery process of its own, with a soft time limit short enough to be met.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
import redis
from sqlalchemy import select, text

from integrations.crm import CrmTransientError, OdooCrm, OdooRpc, PartnerIn
from models import Contact, Conversation, CrmRecord, CrmSyncJob, Deal, Message
from models.base import utcnow
from models.crm import DONE, FAILED, LEAD, LOG, NOTE, QUEUED
from models.db import session_scope
from pipeline import crm_sync
from queueing import names
from queueing.publish import sync_contacts
from schedules.crm import sweep_sync_jobs
from testkit.processes import CeleryProcess, wait_for
from tests.system.conftest import SHARED

SOFT_TIME_LIMIT_SECONDS = 2


@pytest.fixture(scope="module")
def crm_worker(database, redis_server) -> Iterator[CeleryProcess]:
    """The only worker on the ``crm`` queue while these tests run (the shared ones pause), with a
    short soft time limit and an Odoo timeout longer than it, so the limit is what strikes."""
    paused = [process for process in SHARED if process.process.poll() is None]
    for process in paused:
        process.stop()
    name = f"test-crm-{uuid.uuid4().hex[:6]}"
    args = ["worker", "-n", f"{name}@%h", "-c", "1", "-l", "INFO", "--without-mingle", "-Q", "crm"]
    args += ["--soft-time-limit", str(SOFT_TIME_LIMIT_SECONDS), "--time-limit", "30"]
    process = CeleryProcess(args, {"ODOO_TIMEOUT_SECONDS": "10"}, name).wait_ready()
    yield process
    process.stop()
    for process in paused:
        process.restart().wait_ready()


# --- helpers -----------------------------------------------------------------------------------


def new_contact(name: str, phone: str | None = None, *, deal: bool = False) -> int:
    with session_scope() as session:
        contact = Contact(name=name, phone_e164=phone)
        session.add(contact)
        session.flush()
        if deal:
            session.add(Deal(contact_id=contact.id, title=f"WhatsApp lead: {name}"))
        return contact.id


def known_partner(odoo, contact_id: int, name: str) -> int:
    """A partner already synced for the contact (in Odoo, and in our map)."""
    partner_id = odoo.add("res.partner", name=name)
    with session_scope() as session:
        session.add(
            CrmRecord(
                crm="odoo",
                model="res.partner",
                local_key=f"contact:{contact_id}",
                remote_id=partner_id,
                contact_id=contact_id,
            )
        )
    return partner_id


def queue_job(contact_id: int, kind: str, **values) -> None:
    """A due sync job, published to the crm queue (as pipeline.crm_sync does after a commit)."""
    with session_scope() as session:
        session.add(CrmSyncJob(contact_id=contact_id, kind=kind, reason="test", state=QUEUED, **values))
    sync_contacts([contact_id])


def jobs_of(contact_id: int) -> list[CrmSyncJob]:
    with session_scope() as session:
        return list(session.scalars(select(CrmSyncJob).where(CrmSyncJob.contact_id == contact_id)))


def synced(contact_id: int) -> None:
    wait_for(
        lambda: all(job.state in (DONE, FAILED) for job in jobs_of(contact_id)), 90, "the sync jobs finished"
    )
    assert {job.state for job in jobs_of(contact_id)} == {DONE}


def notes_on(odoo, model: str, record_id: int, containing: str) -> list[str]:
    return [
        m["body"]
        for m in odoo.records("mail.message")
        if (m["model"], m["res_id"]) == (model, record_id) and containing in m["body"]
    ]


@contextmanager
def database_connection_killed_when_crm_ids_are_saved() -> Iterator[None]:
    """The worker's next save into the CRM map waits for a lock held here, and its connection is
    killed while it waits: the write Odoo just did is never recorded."""
    with session_scope() as holder:
        holder.execute(text("LOCK TABLE crm_records IN SHARE MODE"))  # reads go on, writes wait
        yield

        def waiting() -> list[int]:
            return list(
                holder.scalars(
                    text("SELECT pid FROM pg_locks WHERE relation = 'crm_records'::regclass AND NOT granted")
                )
            )

        [pid] = wait_for(waiting, 60, "the worker saving a CRM id")
        holder.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


# --- the client, in this process ---------------------------------------------------------------


def test_a_partner_without_a_phone_is_found_by_our_reference(odoo):
    client = OdooCrm(OdooRpc(odoo.url, odoo.db, odoo.login, odoo.api_key, 2), "ID")
    first = client.upsert_partner(PartnerIn("Tanpa Nomor", None, ref="wacrm-contact:1"))
    again = client.upsert_partner(PartnerIn("Tanpa Nomor", None, ref="wacrm-contact:1"))
    other = client.upsert_partner(PartnerIn("Tanpa Nomor", None, ref="wacrm-contact:2"))
    assert first == (first[0], True) and again == (first[0], False) and other[1] is True
    assert [p["ref"] for p in odoo.records("res.partner")] == ["wacrm-contact:1", "wacrm-contact:2"]


@pytest.mark.parametrize(("status", "unconfirmed"), [(502, True), (504, True), (503, False), (500, False)])
def test_a_proxy_that_gave_up_on_odoo_leaves_the_call_unconfirmed(odoo, status, unconfirmed):
    """A 502/504 comes from a proxy that sent the request on and stopped waiting: Odoo may have
    done it. A 503 or a 500 is Odoo (or the proxy) refusing it."""
    client = OdooCrm(OdooRpc(odoo.url, odoo.db, odoo.login, odoo.api_key, 2), "ID")
    odoo.down(status)
    with pytest.raises(CrmTransientError) as failed:
        client.upsert_partner(PartnerIn("Budi", None, ref="wacrm-contact:3"))
    assert failed.value.unconfirmed is unconfirmed


# --- the sync worker ---------------------------------------------------------------------------


def test_a_contact_without_a_phone_gets_one_partner_when_our_database_fails_after_odoo_created_it(
    odoo, crm_worker
):
    """A WAHA contact known only by its LID has no phone to search by."""
    contact_id = new_contact("Pelanggan LID", deal=True)
    with database_connection_killed_when_crm_ids_are_saved(), session_scope() as session:
        crm_sync.queue_sync(session, contact_id, "new_conversation")
    synced(contact_id)

    [partner] = [p for p in odoo.records("res.partner") if p["name"] == "Pelanggan LID"]
    assert partner["phone"] is False
    assert [lead["partner_id"] for lead in odoo.records("crm.lead")] == [partner["id"]]
    [job] = jobs_of(contact_id)
    assert job.attempts == 2  # it did fail once, and was retried


def test_a_log_is_posted_once_when_our_database_fails_after_odoo_took_it(odoo, crm_worker):
    contact_id = new_contact("Rina", "+6285799990001")
    partner_id = known_partner(odoo, contact_id, "Rina")
    earlier = utcnow() - timedelta(minutes=5)
    with session_scope() as session:
        conversation = Conversation(contact_id=contact_id, started_at=earlier, last_message_at=earlier)
        session.add(conversation)
        session.flush()
        for n in range(3):
            session.add(
                Message(
                    external_id=f"wamid.crm-log-{contact_id}-{n}",
                    contact_id=contact_id,
                    conversation_id=conversation.id,
                    direction="inbound",
                    type="text",
                    text=f"pesan log {n}",
                    payload={},
                    occurred_at=earlier,
                    created_at=earlier,
                )
            )
    with database_connection_killed_when_crm_ids_are_saved():
        queue_job(contact_id, LOG)
    synced(contact_id)

    [log] = notes_on(odoo, "res.partner", partner_id, "pesan log 0")
    assert "pesan log 2" in log


def test_a_note_is_posted_once_when_the_soft_time_limit_strikes_after_odoo_took_it(odoo, crm_worker):
    contact_id = new_contact("Agus", "+6285799990002")
    partner_id = known_partner(odoo, contact_id, "Agus")
    odoo.answer_late("res.partner", "message_post", SOFT_TIME_LIMIT_SECONDS + 3)
    queue_job(contact_id, NOTE, dedupe_key=f"test-note:{contact_id}", payload={"text": "Order SO-1 paid."})
    synced(contact_id)

    assert len(notes_on(odoo, "res.partner", partner_id, "Order SO-1 paid.")) == 1
    [job] = jobs_of(contact_id)
    assert job.attempts == 2


def test_a_job_left_unconfirmed_still_checks_after_a_second_failure(odoo, crm_worker):
    """The post lands but its answer is cut off by the time limit; the retry's check cannot
    reach Odoo at all (that failure left nothing behind, but the first one may have): the attempt
    after it must still check, not post again."""
    contact_id = new_contact("Dewi", "+6285799990003")
    partner_id = known_partner(odoo, contact_id, "Dewi")
    odoo.answer_late("res.partner", "message_post", SOFT_TIME_LIMIT_SECONDS + 3)
    queue_job(contact_id, NOTE, dedupe_key=f"test-note:{contact_id}", payload={"text": "Order SO-2 shipped."})
    wait_for(lambda: notes_on(odoo, "res.partner", partner_id, "Order SO-2"), 30, "the note in Odoo")
    odoo.down("refuse")
    wait_for(
        lambda: any("refused" in str((job.error or {}).get("message")) for job in jobs_of(contact_id)),
        60,
        "a retry refused by Odoo",
    )
    odoo.up()
    synced(contact_id)

    assert len(notes_on(odoo, "res.partner", partner_id, "Order SO-2 shipped.")) == 1


def test_a_backlog_whose_worker_is_killed_mid_batch_is_synced_once(odoo, crm_worker):
    """Twelve new customers, each with a conversation to log: one task takes them all in one
    batch (their partners and leads in a few calls, then a post each). Its worker is killed
    mid-batch, after some posts went out and before any job was marked done. Once the leases
    lapse the sweeper publishes them again, and each customer has one partner, one lead and
    one log in Odoo."""
    crm_worker.stop()  # the batch's own worker, to be killed
    earlier = utcnow() - timedelta(minutes=5)
    contacts = []
    for n in range(12):
        contact_id = new_contact(f"Antrian {n}", f"+628579999{n:04d}", deal=True)
        with session_scope() as session:
            conversation = Conversation(contact_id=contact_id, started_at=earlier, last_message_at=earlier)
            session.add(conversation)
            session.flush()
            for m in range(2):
                session.add(
                    Message(
                        external_id=f"wamid.crm-backlog-{contact_id}-{m}",
                        contact_id=contact_id,
                        conversation_id=conversation.id,
                        direction="inbound",
                        type="text",
                        text=f"antrian {contact_id} pesan {m}",
                        payload={},
                        occurred_at=earlier,
                        created_at=earlier,
                    )
                )
            for kind in (LEAD, LOG):
                session.add(CrmSyncJob(contact_id=contact_id, kind=kind, reason="test", state=QUEUED))
        contacts.append(contact_id)

    def logs(contact_id: int) -> list[str]:
        return [
            m["body"] for m in odoo.records("mail.message") if f"antrian {contact_id} pesan 0" in m["body"]
        ]

    odoo.delay_next(0.3, times=40)  # slow enough to be caught mid-batch
    name = f"test-crm-kill-{uuid.uuid4().hex[:6]}"
    args = ["worker", "-n", f"{name}@%h", "-c", "1", "-l", "INFO", "--without-mingle", "-Q", "crm"]
    doomed = CeleryProcess(args, {"ODOO_TIMEOUT_SECONDS": "10"}, name).wait_ready()
    try:
        sync_contacts([contacts[0]])
        wait_for(lambda: sum(len(logs(c)) for c in contacts) >= 3, 60, "the first posts in Odoo")
    finally:
        doomed.kill()
    assert sum(len(logs(c)) for c in contacts) < len(contacts), "the batch was over before the kill"
    with session_scope() as session:  # its leases lapse (they outlive any task)
        session.execute(
            text(
                "UPDATE crm_sync_jobs SET lease_until = now() - interval '1 minute' "
                "WHERE state = 'running' AND contact_id = ANY(:ids)"
            ),
            {"ids": contacts},
        )
    crm_worker.restart().wait_ready()
    assert sweep_sync_jobs() >= len(contacts)
    for contact_id in contacts:
        synced(contact_id)

    for contact_id in contacts:
        [partner] = [p for p in odoo.records("res.partner") if p["ref"] == f"wacrm-contact:{contact_id}"]
        [lead] = [lead for lead in odoo.records("crm.lead") if lead["partner_id"] == partner["id"]]
        [log] = logs(contact_id)
        assert f"antrian {contact_id} pesan 1" in log
        assert notes_on(odoo, "crm.lead", lead["id"], f"antrian {contact_id} pesan 0") == [log]


def test_a_burst_of_new_jobs_publishes_one_wake_up_and_all_are_synced(odoo, crm_worker, redis_server):
    """Five customers' lead and log jobs, queued one transaction each while the worker is away,
    publish one sync task in all (the later jobs wait behind the first, whose task goes on to
    them), and every job is synced once the worker is back."""
    crm_worker.stop()
    broker = redis.Redis.from_url(redis_server.url)
    broker.delete("crm")  # whatever earlier tests left
    contacts = [new_contact(f"Serbu {n}", f"+628578888{n:04d}", deal=True) for n in range(5)]
    for contact_id in contacts:
        with session_scope() as session:
            crm_sync.queue_sync(session, contact_id, "test")
            crm_sync.queue_log(session, contact_id)
    published = [m for m in broker.lrange("crm", 0, -1) if names.SYNC_CONTACT.encode() in m]
    assert len(published) == 1  # was one per job: ten
    crm_worker.restart().wait_ready()
    for contact_id in contacts:
        synced(contact_id)
    for contact_id in contacts:
        [partner] = [p for p in odoo.records("res.partner") if p["ref"] == f"wacrm-contact:{contact_id}"]
        assert len([lead for lead in odoo.records("crm.lead") if lead["partner_id"] == partner["id"]]) == 1
