"""Routing: decisions per second, and the latency routing adds before an automated reply is queued.

    .venv/bin/python -m bench.routing            # 10,000 messages; --quick: 1,000
    .venv/bin/python -m bench.routing --json figures.json

On a private redis-server and a scratch PostgreSQL database, with the shipped FAQ and three
agents:

1. **Throughput**: N realistic customer messages (FAQ questions with typos, price and order
   questions, greetings, thanks, thumbs-up, small talk; five per customer) are ingested by an
   ingest-only worker, which leaves N routing tasks on the ``routing`` queue. Then
   ``celery -A workers worker -Q routing -c 2`` drains it: decisions per second. Baseline: a no-op
   task drained by two processes on the same broker, in the same run.
2. **Latency**: with ingest and routing workers running, FAQ questions arrive at a steady pace;
   for each, the time from the inbox row (webhook accepted) to its reply row in the outbox, p50
   and p99, and the part of it after ingest finished (what routing adds). Baseline: the ingest
   part, inbox row to processed.
"""

from __future__ import annotations

import itertools
import random
import statistics
import time
from contextlib import ExitStack, closing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from sqlalchemy import text

from bench.harness import (
    bench_database,
    celery_worker,
    configure_environment,
    drain,
    phase,
    private_redis,
    raw_publish_rate,
    store_webhooks,
)
from bench.report import Figure, bench_args, bench_main
from testkit import samples

DESCRIPTION = "Routing decisions per second, and the latency routing adds before a reply is queued."


@dataclass(frozen=True)
class Sizes:
    messages: int
    latency_messages: int
    pace_per_second: float
    noop_tasks: int


FULL = Sizes(messages=10_000, latency_messages=600, pace_per_second=20, noop_tasks=5000)
QUICK = Sizes(messages=1_000, latency_messages=150, pace_per_second=20, noop_tasks=1000)

FAQ_QUESTIONS = [
    "kak jam brp toko bukaa?",
    "toko buka jam berapa ya",
    "alamat tokonya dimana kak",
    "bisa bayar pakai apa aja?",
    "ada katalog produk ga kak",
    "what are your opening hours?",
]
OTHER_MESSAGES = [
    "Halo kak",
    "berapa harganya yang ukuran L?",
    "mau order 2 pcs, ongkir ke Bandung berapa?",
    "sudah transfer ya kak, mohon dicek",
    "ready stok warna hitam?",
    "oke makasih kak 🙏",
    "👍",
    "nanti saya kabari lagi",
    "bisa kirim hari ini?",
    "pesanan saya kapan sampai?",
]
_customers = itertools.count(6281300000000)


def realistic_messages(count: int, per_customer: int = 5) -> list[dict]:
    """Webhook payloads: ``per_customer`` messages from each customer, 30% FAQ questions."""
    rng = random.Random(42)
    payloads, wa_id = [], str(next(_customers))
    for index in range(count):
        if index % per_customer == 0:
            wa_id = str(next(_customers))
        body = rng.choice(FAQ_QUESTIONS) if rng.random() < 0.3 else rng.choice(OTHER_MESSAGES)
        payloads.append(samples.inbound_text(wa_id, "Pelanggan", body))
    return payloads


def seed() -> None:
    from cli import faq
    from models import Agent, AgentTeam
    from models.db import session_scope
    from settings import settings

    faq.import_file(settings.automation_file)
    with session_scope() as session:
        session.add_all(
            Agent(login=login, memberships=[AgentTeam(team=settings.default_team)])
            for login in ("ayu", "bayu", "citra")
        )


def count(sql: str, **params: Any) -> int:
    from models.db import session_scope

    with session_scope() as session:
        return int(session.scalar(text(sql), params) or 0)


def measure_throughput(sizes: Sizes, broker: redis.Redis, figures: list[Figure]) -> float:
    """Decisions per second (also returned, to pace the latency phase below it)."""
    from bench.noop import QUEUE

    phase("baseline: a no-op task drained by two worker processes")
    raw_publish_rate(sizes.noop_tasks)
    noop = drain(broker, QUEUE, lambda: True, "-I", "bench.noop", "-Q", QUEUE)
    print(f"raw consume: {noop.rate:8.0f} tasks/s ({noop.count} no-op tasks, -c 2)")

    phase(f"throughput: {sizes.messages} messages ingested, then routed by -Q routing -c 2")
    store_webhooks(realistic_messages(sizes.messages))
    drain(broker, "ingest", lambda: count("SELECT count(*) FROM inbox_events WHERE state = 'pending'") == 0,
          "-Q", "ingest")  # fmt: skip
    routed = drain(
        broker,
        "routing",
        lambda: count("SELECT count(*) FROM routing_decisions") >= sizes.messages,
        "-Q",
        "routing",
    )
    by_responder = count("SELECT count(DISTINCT responder) FROM routing_decisions")
    print(
        f"routing: {routed.rate:8.0f} decisions/s ({routed.count} messages, {routed.seconds:.1f} s, "
        f"{by_responder} kinds of responder); ratio to raw consume {routed.rate / noop.rate:.2f}"
    )
    figures.append(
        Figure(
            "routing",
            "routing decisions, 2 worker processes",
            routed.rate,
            "/s",
            baseline=noop.rate,
            baseline_name="no-op task consume, 2 processes",
        )
    )
    return routed.rate


def measure_latency(sizes: Sizes, broker: redis.Redis, figures: list[Figure], capacity: float) -> None:
    # Half of what routing sustained: latency, not a queue growing behind an overloaded worker.
    pace = min(sizes.pace_per_second, capacity / 2)
    phase(f"latency: {sizes.latency_messages} FAQ questions at {pace:.1f}/s")
    broker.flushdb()
    rng = random.Random(7)
    payloads = [
        samples.inbound_text(str(next(_customers)), "Pelanggan", rng.choice(FAQ_QUESTIONS[:3]))
        for _ in range(sizes.latency_messages)
    ]
    since = datetime.now(UTC)  # only this phase's messages: the throughput phase's are still there
    with celery_worker("-Q", "ingest,routing", concurrency=2) as worker:
        worker.wait_ready()
        started = time.perf_counter()
        for index, payload in enumerate(payloads):
            time.sleep(max(0.0, started + index / pace - time.perf_counter()))
            store_webhooks([payload])
        deadline = time.perf_counter() + 300
        while count(LATENCY_DONE, since=since) < sizes.latency_messages and time.perf_counter() < deadline:
            time.sleep(0.2)
    from models.db import session_scope

    with session_scope() as session:
        rows = session.execute(text(LATENCY_ROWS), {"since": since}).all()
    total = [float(r.total) * 1000 for r in rows]
    added = [float(r.added) * 1000 for r in rows]
    ingest = [float(r.ingest) * 1000 for r in rows]
    if len(rows) < 2:
        raise RuntimeError(f"only {len(rows)} replies were queued")
    p = _percentiles
    print(
        f"inbound -> reply queued: p50 {p(total)[0]:.1f} ms, p99 {p(total)[1]:.1f} ms ({len(rows)} replies)"
    )
    print(
        f"  of which routing (ingest done -> reply queued): p50 {p(added)[0]:.1f}, p99 {p(added)[1]:.1f} ms"
    )
    print(f"  baseline, ingest (inbox row -> processed): p50 {p(ingest)[0]:.1f}, p99 {p(ingest)[1]:.1f} ms")
    for name, values, index in (("p50", added, 0), ("p99", added, 1)):
        figures.append(
            Figure(
                "routing",
                f"latency routing adds before the reply is queued, {name}",
                p(values)[index],
                "ms",
                baseline=p(ingest)[index],
                baseline_name=f"ingest latency {name}",
            )
        )
    figures.append(Figure("routing", "inbound to reply queued, p50", p(total)[0], "ms"))
    figures.append(Figure("routing", "inbound to reply queued, p99", p(total)[1], "ms"))


# Inbound messages that got their FAQ reply queued, with the three intervals in seconds.
LATENCY_ROWS = """
SELECT extract(epoch FROM o.created_at - i.received_at) AS total,
       extract(epoch FROM o.created_at - i.processed_at) AS added,
       extract(epoch FROM i.processed_at - i.received_at) AS ingest
  FROM inbox_events i
  JOIN messages m ON m.external_id = i.dedupe_key
  JOIN outbound_messages o ON o.dedupe_key = 'reply:' || m.id
 WHERE i.received_at >= :since
"""
LATENCY_DONE = "SELECT count(*) FROM routing_decisions WHERE created_at >= :since"


def _percentiles(values: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49], cuts[98]


def measure(quick: bool, figures: list[Figure] | None = None) -> list[Figure]:
    sizes = QUICK if quick else FULL
    figures = [] if figures is None else figures
    with ExitStack() as stack:
        server = stack.enter_context(private_redis())
        database_url = stack.enter_context(bench_database())
        configure_environment(database_url, server.url)
        from models.migrate import upgrade_to_head

        upgrade_to_head(database_url)
        broker = stack.enter_context(closing(redis.Redis.from_url(server.url)))
        seed()
        capacity = measure_throughput(sizes, broker, figures)
        measure_latency(sizes, broker, figures, capacity)
    return figures


def main(argv: list[str] | None = None) -> None:
    bench_main(measure, bench_args("bench.routing", DESCRIPTION, "1,000 messages, 150 for latency", argv))


if __name__ == "__main__":
    main()
