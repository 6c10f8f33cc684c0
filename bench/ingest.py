"""Ingest benchmark: the webhook producer, end-to-end processing, and the raw Celery baseline.

Everything runs on this machine in one go, against real PostgreSQL (a fresh database
``wacrm_bench_<random>``, migrated, dropped at the end) and a private redis-server on a free
port (never the shared one):

(c) baseline: a no-op task (``bench/noop.py``, queue ``bench``) published in a loop with
    ``apply_async`` on the project's Celery app: the raw publish rate. Then
    ``celery -A workers worker -c 2 -I bench.noop -Q bench`` consumes them: the raw consume rate.
(a) ingest: signed one-message Cloud API webhooks (``testkit.samples.inbound_text``, unique wa_ids
    and wamids) POSTed over HTTP to ``uvicorn producers.app:app``. No worker runs, so the ingest
    queue just fills. Max throughput is the best closed-loop rate over several client
    concurrencies, for ``uvicorn --workers 1`` and ``--workers 2``; then p50/p99 latency of an
    open-loop load paced at half that maximum, on the better server, each request timed from
    its scheduled start (time spent waiting for a free client connection counts).
(b) end-to-end: N inbox events pre-loaded with ``producers.inbox.store_and_enqueue`` (one task
    each), then ``celery -A workers worker -c 1`` on every queue, timed until no inbox row is
    ``pending``; then the same again with ``-c 2`` (two worker processes). Each against the raw
    consume rate of the same number of processes (the baseline consumes with ``-c 1`` too), and
    2 processes against 1.
(m) peak memory: the RSS high-water mark (``VmHWM`` in ``/proc/<pid>/status``) of each worker
    pool process and of the worker's main process during (b), against the same worker consuming
    only the no-op task in (c).

Consume rates (b, c) run from the worker's first fetch to the drained queue, so start-up time
is left out (and printed). The load generator is a minimal asyncio HTTP/1.1 keep-alive client,
so it takes as little as possible of the CPU the server needs; its CPU per request is printed.

Run from the project root::

    .venv/bin/python -m bench.ingest            # full size, a few minutes
    .venv/bin/python -m bench.ingest --quick    # small counts, a smoke run
    .venv/bin/python -m bench.ingest --json figures.json   # also write the figures (bench.report)

PostgreSQL is reached as ``BENCH_POSTGRES_URL`` (default: postgres on 127.0.0.1:5432). Timings
are printed against their targets, never asserted. Every process started is stopped, and the
database dropped, on any exit.
"""

from __future__ import annotations

import asyncio
import itertools
from contextlib import ExitStack, closing
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy import text

from bench.harness import (
    SECRET,
    WARMUP_REQUESTS,
    WORKER_CONCURRENCY,
    Connection,
    Drain,
    Recorder,
    Run,
    bench_database,
    closed_loop,
    configure_environment,
    drain,
    inbox_counts,
    phase,
    private_redis,
    raw_publish_rate,
    store_webhooks,
    uvicorn_server,
)
from bench.report import Figure, bench_args, bench_main
from testkit import samples

DESCRIPTION = "Ingest benchmark: the webhook producer, end-to-end processing, and the raw Celery baseline."
WEBHOOK_PATH = "/webhooks/whatsapp"
UVICORN_WORKERS = (1, 2)
END_TO_END_CONCURRENCY = (1, 2)  # worker processes (prefork pool size) in (b), and in (c)
INGEST_QUEUE = "ingest"
LATENCY_CONNECTIONS = 64

TARGET_PUBLISH_RATIO = 0.8
TARGET_P99_SECONDS = 0.050
TARGET_CONSUME_RATIO = 0.5

_wa_ids = itertools.count(6281100000000)  # unique customers across every phase


@dataclass(frozen=True)
class Sizes:
    requests: int  # per closed-loop run, and for the paced latency run
    events: int  # pre-loaded inbox events, end to end
    tasks: int  # no-op tasks, baseline
    concurrency: tuple[int, ...]  # closed-loop client connections tried


FULL = Sizes(requests=3000, events=3000, tasks=5000, concurrency=(2, 4, 8, 32))
QUICK = Sizes(requests=300, events=200, tasks=1000, concurrency=(4, 16))


@dataclass(frozen=True)
class Ingest:
    best: Run
    workers: int
    concurrency: int
    latency: Run


# --- resources --------------------------------------------------------------------------------


# --- the HTTP load generator ------------------------------------------------------------------


def next_payload() -> dict[str, Any]:
    wa_id = str(next(_wa_ids))
    return samples.inbound_text(wa_id, f"Pelanggan {wa_id[-4:]}", "Halo, apakah stoknya masih ada?")


def webhook_requests(count: int, port: int) -> list[bytes]:
    """``count`` signed webhook POSTs, each a new customer's one text message, ready to write."""
    return [_http_post(port, *samples.encode(next_payload(), SECRET)) for _ in range(count)]


def _http_post(port: int, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {WEBHOOK_PATH} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def open_loop(port: int, requests: list[bytes], rate: float) -> Run:
    """Requests started on a fixed schedule at ``rate``/s, whatever the answers; latency from schedule."""
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(LATENCY_CONNECTIONS):
        pool.put_nowait(await Connection.open(port))
    loop = asyncio.get_running_loop()
    recorder = Recorder()

    async def one(request: bytes, due: float) -> None:
        connection = await pool.get()
        try:
            status = await connection.send(request)
        finally:
            pool.put_nowait(connection)
        recorder.record(status, loop.time() - due)

    start, tasks = loop.time(), []
    for index, request in enumerate(requests):
        due = start + index / rate
        await asyncio.sleep(max(0.0, due - loop.time()))
        tasks.append(asyncio.create_task(one(request, due)))
    try:
        await asyncio.gather(*tasks)
    finally:
        while not pool.empty():
            pool.get_nowait().close()
    return recorder.finish()


# --- (c) the baseline -------------------------------------------------------------------------


def measure_baseline(sizes: Sizes, broker: redis.Redis) -> tuple[float, dict[int, Drain]]:
    """The raw publish rate, and the raw consume rate with each of END_TO_END_CONCURRENCY (the
    default, 2, first; the tasks published again for each)."""
    from bench.noop import QUEUE

    phase("(c) baseline: a no-op task on the project's Celery app and broker")
    publish = raw_publish_rate(sizes.tasks)
    print(f"(c) raw publish: {publish:8.0f} tasks/s  ({sizes.tasks} no-op apply_async, queue {QUEUE!r})")
    consumes: dict[int, Drain] = {}
    for concurrency in sorted(END_TO_END_CONCURRENCY, key=lambda c: c != WORKER_CONCURRENCY):
        if consumes:
            again = raw_publish_rate(sizes.tasks)
            print(f"(c) raw publish: {again:8.0f} tasks/s  (again, for -c {concurrency})")
        consume = drain(broker, QUEUE, lambda: True, "-I", "bench.noop", "-Q", QUEUE, concurrency=concurrency)
        consumes[concurrency] = consume
        print(
            f"(c) raw consume: {consume.rate:8.0f} tasks/s  ({consume.count} no-op tasks, worker "
            f"-c {concurrency} -Q {QUEUE}; {consume.seconds:.2f} s from first fetch, "
            f"start-up {consume.startup:.1f} s)"
        )
        if consume.memory:
            print(f"(c) -c {concurrency} {consume.memory.describe()}")
    return publish, consumes


# --- (a) webhook ingest -----------------------------------------------------------------------


def max_throughput(workers: int, sizes: Sizes) -> tuple[Run, int]:
    """Closed-loop runs at each concurrency; the fastest run and its concurrency."""
    runs: dict[int, Run] = {}
    with uvicorn_server(workers) as port:
        asyncio.run(closed_loop(port, webhook_requests(WARMUP_REQUESTS, port), 8))
        for concurrency in sizes.concurrency:
            run = asyncio.run(closed_loop(port, webhook_requests(sizes.requests, port), concurrency))
            runs[concurrency] = run
            print(
                f"(a) uvicorn --workers {workers}, {concurrency:2d} clients: {run.rate:6.0f} req/s  "
                f"p50 {run.percentile(50) * 1000:6.1f} ms  p99 {run.percentile(99) * 1000:6.1f} ms  "
                f"failures {run.failures}  client CPU {run.client_cpu / run.requests * 1e6:.0f} us/req"
            )
    best = max(runs, key=lambda concurrency: runs[concurrency].rate)
    return runs[best], best


def paced_latency(workers: int, rate: float, count: int) -> Run:
    with uvicorn_server(workers) as port:
        asyncio.run(closed_loop(port, webhook_requests(WARMUP_REQUESTS, port), 8))
        return asyncio.run(open_loop(port, webhook_requests(count, port), rate))


def measure_ingest(sizes: Sizes) -> Ingest:
    phase("(a) webhook ingest over HTTP, no worker running")
    results = {workers: max_throughput(workers, sizes) for workers in UVICORN_WORKERS}
    workers = max(results, key=lambda w: results[w][0].rate)
    best, concurrency = results[workers]
    print(f"(a) ingest max:  {best.rate:8.0f} req/s  (uvicorn --workers {workers}, {concurrency} clients)")
    phase(f"(a) latency, open loop at half the max rate, uvicorn --workers {workers}")
    latency = paced_latency(workers, best.rate / 2, sizes.requests)
    print(
        f"(a) paced at {best.rate / 2:.0f} req/s (open loop, {latency.requests} requests, achieved "
        f"{latency.rate:.0f} req/s): p50 {latency.percentile(50) * 1000:.1f} ms  "
        f"p99 {latency.percentile(99) * 1000:.1f} ms  failures {latency.failures}"
    )
    return Ingest(best, workers, concurrency, latency)


# --- (b) end to end ---------------------------------------------------------------------------


def reset_state(broker: redis.Redis) -> None:
    """Empty every table and the private broker (ours alone), so (b) starts from nothing."""
    from models import Base
    from models.db import session_scope

    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with session_scope() as session:
        session.execute(text(f"TRUNCATE {tables} CASCADE"))
    broker.flushdb()


def preload_events(count: int) -> None:
    """``count`` one-message webhooks' inbox events, stored and enqueued as the producer does."""
    store_webhooks(next_payload() for _ in range(count))


def measure_end_to_end(sizes: Sizes, broker: redis.Redis, concurrency: int = WORKER_CONCURRENCY) -> Drain:
    phase(f"(b) end-to-end: pre-loaded inbox events through the real worker, -c {concurrency}")
    reset_state(broker)
    preload_events(sizes.events)
    result = drain(
        broker, INGEST_QUEUE, lambda: inbox_counts().get("pending", 0) == 0, concurrency=concurrency
    )
    counts = inbox_counts()
    print(
        f"(b) end-to-end:  {result.rate:8.0f} events/s  ({result.count} events, worker "
        f"-c {concurrency}; {result.seconds:.1f} s from first fetch, start-up "
        f"{result.startup:.1f} s; inbox rows by state {counts})"
    )
    if result.memory:
        print(f"(m) -c {concurrency} {result.memory.describe()}")
    return result


# --- the report -------------------------------------------------------------------------------


def ingest_figures(publish: float, ingest: Ingest) -> list[Figure]:
    publish_ratio = ingest.best.rate / publish
    p99 = ingest.latency.percentile(99) * 1000
    return [
        Figure(
            "ingest",
            f"webhooks accepted over HTTP (uvicorn --workers {ingest.workers}, {ingest.concurrency} clients)",
            ingest.best.rate,
            "/s",
            publish,
            "raw publish, no-op apply_async",
            f"ratio >= {TARGET_PUBLISH_RATIO:g}",
            publish_ratio >= TARGET_PUBLISH_RATIO,
        ),
        Figure(
            "ingest",
            "p50 latency at half the max rate (open loop)",
            ingest.latency.percentile(50) * 1e3,
            "ms",
        ),
        Figure(
            "ingest",
            "p99 latency at half the max rate (open loop)",
            p99,
            "ms",
            goal=f"< {TARGET_P99_SECONDS * 1000:g} ms",
            met=p99 < TARGET_P99_SECONDS * 1000,
        ),
    ]


def end_to_end_figures(consumes: dict[int, Drain], ends: dict[int, Drain]) -> list[Figure]:
    figures = []
    for concurrency, result in sorted(ends.items()):
        raw = consumes[concurrency]
        figures.append(
            Figure(
                "end-to-end",
                f"inbox events processed, {_processes(concurrency)} (-c {concurrency})",
                result.rate,
                "/s",
                raw.rate,
                f"raw consume, no-op task, -c {concurrency}",
                f"ratio >= {TARGET_CONSUME_RATIO:g}",
                result.rate / raw.rate >= TARGET_CONSUME_RATIO,
            )
        )
    low, high = min(ends), max(ends)
    if low != high:
        figures.append(
            Figure(
                "end-to-end",
                f"scaling: end-to-end with {_processes(high)} / with {_processes(low)}",
                ends[high].rate,
                "/s",
                ends[low].rate,
                f"end-to-end, -c {low}",
            )
        )
        figures.append(
            Figure(
                "end-to-end",
                f"scaling: raw consume with {_processes(high)} / with {_processes(low)}",
                consumes[high].rate,
                "/s",
                consumes[low].rate,
                f"raw consume, -c {low}",
            )
        )
    return figures


def memory_figures(consumes: dict[int, Drain], ends: dict[int, Drain]) -> list[Figure]:
    figures = []
    for concurrency, result in sorted(ends.items()):
        raw = consumes[concurrency]
        if result.memory is None or raw.memory is None:
            continue
        figures.append(
            Figure(
                "memory",
                f"peak RSS per worker pool process, end-to-end -c {concurrency} "
                f"(largest of {len(result.memory.pool_kib)})",
                result.memory.pool_peak_mib,
                "MiB",
                raw.memory.pool_peak_mib,
                f"pool process of a worker running only the no-op task, -c {concurrency}",
            )
        )
    high = max(ends)
    if ends[high].memory and consumes[high].memory:
        figures.append(
            Figure(
                "memory",
                f"peak RSS of the worker's main process, end-to-end -c {high}",
                ends[high].memory.main_mib,
                "MiB",
                consumes[high].memory.main_mib,
                f"main process, no-op task only, -c {high}",
            )
        )
    return figures


def _processes(concurrency: int) -> str:
    return "1 worker process" if concurrency == 1 else f"{concurrency} worker processes"


def summarize(publish: float, consume: Drain, ingest: Ingest, end_to_end: Drain) -> None:
    publish_ratio = ingest.best.rate / publish
    p99_ms = ingest.latency.percentile(99) * 1000
    consume_ratio = end_to_end.rate / consume.rate
    print(
        f"\nSummary: raw publish {publish:.0f}/s, raw consume {consume.rate:.0f}/s, "
        f"ingest {ingest.best.rate:.0f} req/s (uvicorn --workers {ingest.workers}), "
        f"end-to-end {end_to_end.rate:.0f} events/s"
    )
    _check("ingest rate / raw publish rate", publish_ratio, ">=", TARGET_PUBLISH_RATIO)
    _check("p99 at half max rate, ms", p99_ms, "<", TARGET_P99_SECONDS * 1000)
    _check("end-to-end / raw consume rate", consume_ratio, ">=", TARGET_CONSUME_RATIO)


def _check(name: str, value: float, relation: str, target: float) -> None:
    met = value >= target if relation == ">=" else value < target
    print(f"  {name:31s} {value:8.2f}   target {relation} {target:<5g} {'met' if met else 'NOT met'}")


def measure(quick: bool, figures: list[Figure] | None = None) -> list[Figure]:
    """Every phase, in a private redis-server and a fresh database; the figures, each appended to
    ``figures`` (when given) as soon as it is measured."""
    sizes = QUICK if quick else FULL
    figures = [] if figures is None else figures
    with ExitStack() as stack:
        server = stack.enter_context(private_redis())
        database_url = stack.enter_context(bench_database())
        configure_environment(database_url, server.url)
        from models.migrate import upgrade_to_head

        upgrade_to_head(database_url)
        broker = stack.enter_context(closing(redis.Redis.from_url(server.url)))
        publish, consumes = measure_baseline(sizes, broker)
        ingest = measure_ingest(sizes)
        figures += ingest_figures(publish, ingest)
        ends = {c: measure_end_to_end(sizes, broker, c) for c in sorted(END_TO_END_CONCURRENCY)}
        figures += end_to_end_figures(consumes, ends)
        figures += memory_figures(consumes, ends)
    summarize(publish, consumes[WORKER_CONCURRENCY], ingest, ends[WORKER_CONCURRENCY])
    return figures


def main(argv: list[str] | None = None) -> None:
    bench_main(
        measure, bench_args("bench.ingest", DESCRIPTION, "small counts: a smoke run in under a minute", argv)
    )


if __name__ == "__main__":
    main()
