"""Inbox pages benchmark: the queue page and a conversation page on a big history.

A private PostgreSQL database is filled with CONVERSATIONS conversations (one contact each) and
MESSAGES_PER conversation messages each (100,000 and 5,000,000 at full size), a fifth of them
waiting for a reply, with lead classes, through ``INSERT ... SELECT generate_series`` (the
pages read the same tables the workers write). One API process (uvicorn) serves the pages; a
client signed in with ADMIN_TOKEN asks for them one after another. Reported: p50 and p95 of
the queue page (first page and pages further down by the keyset cursor) and of a conversation
page (random conversations), goal p95 < 200 ms, each against the same page on a small history
(BASELINE_CONVERSATIONS) measured in the same run: the ratio says what the size costs.
Figures are printed, never asserted.

    .venv/bin/python -m bench.inbox            # 100,000 conversations, 5,000,000 messages
    .venv/bin/python -m bench.inbox --quick    # 10,000 conversations, 200,000 messages
"""

from __future__ import annotations

import os
import random
import re
import statistics
import time

from sqlalchemy import create_engine, text

from bench.harness import bench_database, configure_environment, phase, private_redis, uvicorn_server
from bench.report import Figure, bench_args, bench_main

DESCRIPTION = "Inbox pages: queue and conversation page p95 on 100,000 conversations, 5M messages."
ADMIN_TOKEN = "bench-inbox-admin-token-Hq7Lx2Wp9Z"
CONVERSATIONS, QUICK_CONVERSATIONS, BASELINE_CONVERSATIONS = 100_000, 10_000, 1_000
MESSAGES_PER, QUICK_MESSAGES_PER = 50, 20
REQUESTS, QUICK_REQUESTS = 200, 60
GOAL_MS = 200.0
CURSOR = re.compile(r"cursor=([A-Za-z0-9_\-=.%]+)")

# One contact and one conversation per n; messages alternate customer / us, the newest last.
SEED = """
INSERT INTO contacts (id, name, phone_e164, lead_source, lead_class, created_at)
SELECT n, 'Pelanggan ' || n, '+62812' || lpad(n::text, 8, '0'), 'organic',
       (ARRAY['hot', 'warm', 'cold', NULL])[1 + n % 4], now()
FROM generate_series(:first, :last) AS n;

INSERT INTO conversations (id, contact_id, started_at, last_message_at, last_inbound_at,
                           window_expires_at, awaiting_reply_since, message_count, created_at)
SELECT n, n, now() - interval '1 day' - n * interval '1 second', now() - n * interval '1 second',
       now() - n * interval '1 second', now() + interval '1 day' - n * interval '1 second',
       CASE WHEN n % 5 = 0 THEN now() - n * interval '1 second' END, :per, now()
FROM generate_series(:first, :last) AS n;

INSERT INTO messages (external_id, contact_id, conversation_id, direction, type, text, payload,
                      occurred_at, status_rank, created_at)
SELECT 'wamid.bench.' || c || '.' || m, c, c, CASE WHEN m % 2 = 0 THEN 'inbound' ELSE 'outbound' END,
       'text', 'Halo kak, pesan nomor ' || m || ' dari pelanggan ' || c, '{}'::json,
       now() - c * interval '1 second' - (:per - m) * interval '1 minute', 0, now()
FROM generate_series(:first, :last) AS c, generate_series(1, :per) AS m;
"""


def seed(database_url: str, first: int, last: int, per: int) -> float:
    """Conversations ``first``..``last`` with ``per`` messages each; returns the seconds it took."""
    started = time.perf_counter()
    engine = create_engine(database_url)
    with engine.begin() as connection:
        for statement in filter(str.strip, SEED.split(";\n")):
            connection.execute(text(statement), {"first": first, "last": last, "per": per})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE"))
    engine.dispose()
    return time.perf_counter() - started


def timed(client, path: str) -> tuple[float, str]:
    started = time.perf_counter()
    answer = client.get(path)
    elapsed = (time.perf_counter() - started) * 1000
    if answer.status_code != 200:
        raise RuntimeError(f"GET {path} answered {answer.status_code}: {answer.text[:300]}")
    return elapsed, answer.text


def measure_pages(port: int, conversations: int, requests: int) -> dict[str, list[float]]:
    """Milliseconds per request: the queue's first page, pages further down, conversation pages."""
    import httpx

    times: dict[str, list[float]] = {"queue": [], "queue_deep": [], "conversation": []}
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=30) as client:
        for _ in range(5):  # warm the process and the database's cache
            timed(client, "/inbox?tab=all")
        cursor = None
        for _ in range(requests):
            elapsed, _ = timed(client, "/inbox?tab=all")
            times["queue"].append(elapsed)
            path = f"/inbox/queue?tab=all&cursor={cursor}" if cursor else "/inbox/queue?tab=all"
            elapsed, fragment = timed(client, path)
            times["queue_deep"].append(elapsed)
            found = CURSOR.search(fragment)
            cursor = found.group(1) if found else None
            elapsed, _ = timed(client, f"/inbox/conversations/{random.randint(1, conversations)}")
            times["conversation"].append(elapsed)
    return times


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[94]


def report(name: str, big: list[float], small: list[float], figures: list[Figure]) -> None:
    print(
        f"   {name}: p50 {statistics.median(big):.0f} ms, p95 {p95(big):.0f} ms "
        f"(small history p95 {p95(small):.0f} ms, ratio {p95(big) / p95(small):.2f})"
    )
    figures.append(
        Figure(
            "inbox",
            f"{name} p95",
            p95(big),
            "ms",
            p95(small),
            f"p95 with {BASELINE_CONVERSATIONS:,} conversations",
            goal=f"< {GOAL_MS:.0f} ms",
            met=p95(big) < GOAL_MS,
        )
    )


def measure(quick: bool, figures: list[Figure]) -> None:
    sizes = (QUICK_CONVERSATIONS, QUICK_MESSAGES_PER, QUICK_REQUESTS)
    conversations, per, requests = sizes if quick else (CONVERSATIONS, MESSAGES_PER, REQUESTS)
    with private_redis() as redis_server, bench_database() as database_url:
        configure_environment(database_url, redis_server.url)
        os.environ.update(ADMIN_TOKEN=ADMIN_TOKEN, DEVELOPMENT_MODE="true")
        from models.migrate import upgrade_to_head

        upgrade_to_head()
        phase(f"baseline: {BASELINE_CONVERSATIONS:,} conversations, {per} messages each")
        seed(database_url, 1, BASELINE_CONVERSATIONS, per)
        with uvicorn_server(1) as port:
            small = measure_pages(port, BASELINE_CONVERSATIONS, requests)
        phase(f"filling to {conversations:,} conversations, {conversations * per:,} messages")
        seconds = seed(database_url, BASELINE_CONVERSATIONS + 1, conversations, per)
        print(f"   filled in {seconds:.0f} s")
        with uvicorn_server(1) as port:
            big = measure_pages(port, conversations, requests)
    report("queue page (first page)", big["queue"], small["queue"], figures)
    report("queue page (next pages by cursor)", big["queue_deep"], small["queue_deep"], figures)
    report("conversation page", big["conversation"], small["conversation"], figures)


def main(argv: list[str] | None = None) -> None:
    bench_main(measure, bench_args("bench.inbox", DESCRIPTION, "10,000 conversations: a smoke run", argv))


if __name__ == "__main__":
    main()
