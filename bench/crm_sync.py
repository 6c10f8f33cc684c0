"""CRM sync benchmark: conversations synced to Odoo per second, and JSON-RPC calls per conversation.

Everything runs on this machine against real PostgreSQL (a fresh database, migrated, dropped at
the end), a private redis-server on a free port and the fake Odoo (``testkit.fakes.odoo``, a real
HTTP server in this process speaking Odoo's JSON-RPC):

1. N new customers each send one webhook with M text messages (stored in the inbox as the
   producer stores them) and ``celery -A workers worker -Q ingest -c 2`` processes them: each
   conversation leaves a ``lead`` sync job and a ``log`` sync job, queued on ``crm``.
2. Once every log job is due (they wait LOG_BATCH_SECONDS to batch a burst of messages),
   ``celery -A workers worker -Q crm -c 2`` syncs them: a partner, a lead and the conversation
   log per customer. Timed from the worker's first fetch until no job is left; reported as
   conversations per second, and the calls the fake counted, per conversation and by method.
3. Baseline: the same JSON-RPC client calling ``search_read`` on the fake in a loop from two
   processes, as fast as it answers: what two processes could do if sync were nothing but calls.
4. Second baseline, printed beside the first: the same client replaying the sync's
   ``message_post`` calls (the same leads, the same bodies: all but a few percent of its calls)
   from two processes, so that the ratio compares calls of the same weight.

Run from the project root::

    .venv/bin/python -m bench.crm_sync            # 1,000 conversations
    .venv/bin/python -m bench.crm_sync --quick    # 100 conversations, a smoke run
    .venv/bin/python -m bench.crm_sync --json figures.json   # also write the figures (bench.report)

PostgreSQL is reached as ``BENCH_POSTGRES_URL`` (default: postgres on 127.0.0.1:5432). Figures are
printed, never asserted. Every process started is stopped, and the database dropped, on any exit.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import time
from collections.abc import Callable
from contextlib import ExitStack, closing
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy import text

from bench.harness import (
    PRELOAD_BATCH,
    bench_database,
    configure_environment,
    drain,
    inbox_counts,
    phase,
    private_redis,
)
from bench.report import Figure, bench_args, bench_main
from testkit import samples
from testkit.fakes.odoo import FakeOdoo

DESCRIPTION = "CRM sync benchmark: conversations synced to the (fake) Odoo, and JSON-RPC calls each."
MESSAGES_PER_CONVERSATION = 4
BASELINE_PROCESSES = 2

_wa_ids = itertools.count(6285800000000)


@dataclass(frozen=True)
class Sizes:
    conversations: int
    baseline_calls: int  # per baseline process


FULL = Sizes(conversations=1000, baseline_calls=3000)
QUICK = Sizes(conversations=100, baseline_calls=500)


def preload(conversations: int) -> None:
    """One webhook per new customer, with MESSAGES_PER_CONVERSATION messages, into the inbox."""
    from producers.inbox import store_and_enqueue
    from producers.whatsapp import Envelope, inbox_events

    for start in range(0, conversations, PRELOAD_BATCH):
        events = []
        for _ in range(min(PRELOAD_BATCH, conversations - start)):
            wa_id = str(next(_wa_ids))
            payload = samples.envelope(
                messages=[
                    samples.text(wa_id, f"Halo kak, pesan {n}") for n in range(MESSAGES_PER_CONVERSATION)
                ],
                contacts=[samples.profile(wa_id, f"Pelanggan {wa_id[-4:]}")],
            )
            events.extend(inbox_events(Envelope.model_validate(payload)))
        store_and_enqueue(events)


def job_counts() -> dict[str, int]:
    from models.db import session_scope

    with session_scope() as session:
        rows = session.execute(text("SELECT state, count(*) FROM crm_sync_jobs GROUP BY state"))
        return {state: count for state, count in rows}


def seconds_until_all_due() -> float:
    from models.db import session_scope

    with session_scope() as session:
        latest = session.scalar(text("SELECT max(next_attempt_at) FROM crm_sync_jobs WHERE state = 'queued'"))
    if latest is None:
        return 0.0
    from models.base import utcnow

    return max(0.0, (latest - utcnow()).total_seconds())


def _baseline_worker(
    url: str, db: str, login: str, key: str, calls: int, results: multiprocessing.Queue
) -> None:
    from integrations.crm.odoo import OdooRpc

    rpc = OdooRpc(url, db, login, key, 10)
    rpc.uid()
    started = time.perf_counter()
    for _ in range(calls):
        rpc.execute("res.partner", "search_read", [("phone", "ilike", "5678")], fields=["id"], limit=1)
    results.put(calls / (time.perf_counter() - started))


def baseline(odoo: FakeOdoo, calls: int) -> float:
    """JSON-RPC calls per second that BASELINE_PROCESSES processes get from the fake, together."""
    return _together(_baseline_worker, odoo, [calls] * BASELINE_PROCESSES)


def _together(worker: Callable[..., None], odoo: FakeOdoo, shares: list[Any]) -> float:
    """The summed rate of one forked process per share, each running ``worker`` on the fake."""
    results: multiprocessing.Queue = multiprocessing.Queue()
    context = multiprocessing.get_context("fork")
    processes = [
        context.Process(target=worker, args=(odoo.url, odoo.db, odoo.login, odoo.api_key, share, results))
        for share in shares
    ]
    for process in processes:
        process.start()
    rates = [results.get(timeout=600) for _ in processes]
    for process in processes:
        process.join()
    return sum(rates)


def _replay_worker(
    url: str,
    db: str,
    login: str,
    key: str,
    posts: list[tuple[str, int, str]],
    results: multiprocessing.Queue,
) -> None:
    from integrations.crm.odoo import OdooRpc

    rpc = OdooRpc(url, db, login, key, 10)
    rpc.uid()
    started = time.perf_counter()
    for model, res_id, body in posts:
        rpc.execute(
            model,
            "message_post",
            [res_id],
            body=body,
            message_type="comment",
            subtype_xmlid="mail.mt_note",
            body_is_html=True,
        )
    results.put(len(posts) / (time.perf_counter() - started))


def replay(odoo: FakeOdoo) -> float:
    """JSON-RPC calls per second that BASELINE_PROCESSES processes get from the fake, together,
    posting again every note the sync posted (same record, same body), split between them."""
    posts = [
        (str(row["model"]), int(row["res_id"]), str(row["body"])) for row in odoo.records("mail.message")
    ]
    return _together(_replay_worker, odoo, [posts[n::BASELINE_PROCESSES] for n in range(BASELINE_PROCESSES)])


def measure(quick: bool, figures: list[Figure] | None = None) -> list[Figure]:
    """Every phase in a private redis-server and a fresh database; the figures, each appended to
    ``figures`` (when given) as soon as it is measured."""
    sizes = QUICK if quick else FULL
    figures = [] if figures is None else figures
    with ExitStack() as stack:
        server = stack.enter_context(private_redis())
        database_url = stack.enter_context(bench_database())
        odoo = stack.enter_context(FakeOdoo())
        configure_environment(database_url, server.url)
        os.environ.update(
            ODOO_URL=odoo.url, ODOO_DB=odoo.db, ODOO_LOGIN=odoo.login, ODOO_API_KEY=odoo.api_key
        )
        from models.migrate import upgrade_to_head

        upgrade_to_head(database_url)
        broker = stack.enter_context(closing(redis.Redis.from_url(server.url)))
        n = sizes.conversations

        phase(f"1. ingest: {n} new customers, {MESSAGES_PER_CONVERSATION} messages each (no CRM worker)")
        preload(n)
        ingest = drain(broker, "ingest", lambda: inbox_counts().get("pending", 0) == 0, "-Q", "ingest")
        print(f"   ingested {ingest.count} events in {ingest.seconds:.1f} s; sync jobs {job_counts()}")
        time.sleep(seconds_until_all_due() + 1)

        phase("2. CRM sync: celery worker -Q crm -c 2 against the fake Odoo")
        sync = drain(broker, "crm", lambda: not ({"queued", "running"} & set(job_counts())), "-Q", "crm")
        counts = job_counts()
        calls = odoo.count()
        partners, leads = len(odoo.records("res.partner")), len(odoo.records("crm.lead"))
        posts = len(odoo.records("mail.message"))
        print(
            f"   {n / sync.seconds:8.1f} conversations/s  ({sum(counts.values())} jobs, {counts}; "
            f"{sync.seconds:.1f} s from first fetch, start-up {sync.startup:.1f} s)"
        )
        print(
            f"   Odoo now holds {partners} partners, {leads} leads, {posts} posted logs (expected {n} each)"
        )
        posts_each = odoo.count(method="message_post") / n
        print(
            f"   JSON-RPC calls: {calls} = {calls / n:.2f} per conversation "
            f"({MESSAGES_PER_CONVERSATION} messages each); message_post {posts_each:.2f} per conversation"
        )
        for (model, method), count in sorted(odoo.calls.items(), key=lambda item: -item[1]):
            print(f"      {count:6d}  {model}.{method}")
        complete = partners == leads == posts == n
        figures += [
            Figure(
                "crm sync",
                f"conversations synced to Odoo, worker -Q crm -c 2 ({n:,} conversations)",
                n / sync.seconds,
                "/s",
                goal=f"{n:,} partners, leads and logs in Odoo",
                met=complete,
            ),
            Figure(
                "crm sync",
                f"JSON-RPC calls per conversation ({MESSAGES_PER_CONVERSATION} messages each)",
                calls / n,
                "",
                goal="<= 2",
                met=calls / n <= 2,
            ),
            Figure("crm sync", "message_post calls per conversation", posts_each, ""),
        ]

        phase(f"3. baseline: the JSON-RPC client alone, {BASELINE_PROCESSES} processes calling search_read")
        raw = baseline(odoo, sizes.baseline_calls)
        print(f"   {raw:8.0f} calls/s")

        phase(
            f"4. second baseline: the client replaying the sync's message_post calls, "
            f"{BASELINE_PROCESSES} processes"
        )
        replayed = replay(odoo)
        print(f"   {replayed:8.0f} calls/s")
    rate = calls / sync.seconds
    figures.append(
        Figure(
            "crm sync",
            "JSON-RPC call rate while syncing",
            rate,
            "/s",
            raw,
            f"the JSON-RPC client alone, {BASELINE_PROCESSES} processes calling search_read",
            goal="ratio >= 0.5",
            met=rate / raw >= 0.5,
        )
    )
    figures.append(
        Figure(
            "crm sync",
            "JSON-RPC call rate while syncing (against the replay)",
            rate,
            "/s",
            replayed,
            f"the JSON-RPC client alone, {BASELINE_PROCESSES} processes "
            "replaying the sync's message_post calls",
            goal="ratio >= 0.5",
            met=rate / replayed >= 0.5,
        )
    )
    print(
        f"\nSummary: {n / sync.seconds:.1f} conversations/s, {calls / n:.2f} JSON-RPC calls per "
        f"conversation (goal <= 2); sync makes {rate:.0f} calls/s = {rate / raw:.2f}x the raw client's "
        f"{raw:.0f}/s (goal >= 0.5x), {rate / replayed:.2f}x the client replaying its message_post calls "
        f"({replayed:.0f}/s)"
    )
    return figures


def main(argv: list[str] | None = None) -> None:
    bench_main(measure, bench_args("bench.crm_sync", DESCRIPTION, "100 conversations: a smoke run", argv))


if __name__ == "__main__":
    main()
