"""Label benchmark: the label API and dashboard on a big table, and the label-event processing rate.

Everything runs on this machine against real PostgreSQL (a fresh database ``wacrm_bench_<random>``,
migrated, dropped at the end) and a private redis-server on a free port (never the shared one):

1. Seed, in bulk SQL (``INSERT … SELECT generate_series``): 100,000 contacts (distinct Indonesian
   mobile numbers, the ``phone`` and ``wa_id`` identities identity resolution would have made,
   names, 30% from click-to-WhatsApp ads), 20 labels in one WAHA session (from a label most
   contacts meet to one a few hundred do), and 1,000,000 label events: the ``label_changes``
   history over the last 90 days by six staff members, each contact's events drawn from its own
   few labels so that given and taken away alternate per (contact, label), and the
   ``contact_labels`` state that history leaves (most contacts end with 1-3 active labels), and
   the daily roll-up of that history (``pipeline.label_flow.rebuild``). Then VACUUM ANALYZE.
2. Latency over HTTP (``uvicorn producers.app:app``, one process, one client, one request at a
   time, after a warm-up): ``GET /api/contacts?label=`` (a big and a small label, first page),
   ``GET /api/labels``, ``GET /inbox/labels`` (the labels page, formerly ``/dashboard``) and
   ``GET /api/contacts.csv?label=`` (the small label), p50/p95 against the goal p95 < 200 ms;
   ``GET /healthz`` is the HTTP floor. The page's data queries (``api.labels``) are also timed
   one by one in this process. For whatever misses the goal, EXPLAIN ANALYZE of every statement
   it sends that takes long.
3. Processing rate: N signed WAHA ``label.chat.added`` events for existing contacts POSTed to
   ``/webhooks/waha`` (no worker running, so they wait in the inbox and the queue), then two
   ``celery -A workers worker -c 2`` processes, timed from the first fetch until no inbox row is
   pending. Baseline: a no-op task (``bench/noop.py``) consumed by the same two processes.

Run from the project root::

    .venv/bin/python -m bench.labels            # 100,000 contacts, 1,000,000 events
    .venv/bin/python -m bench.labels --quick    # 10,000 contacts, 100,000 events
    .venv/bin/python -m bench.labels --json figures.json   # also write the figures (bench.report)

PostgreSQL is reached as ``BENCH_POSTGRES_URL`` (default: postgres on 127.0.0.1:5432). Figures are
printed, never asserted. Every process started is stopped, and the database dropped, on any exit.
"""

from __future__ import annotations

import asyncio
import http.client
import itertools
import os
import random
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import redis

from bench.harness import (
    bench_database,
    closed_loop,
    phase,
    private_redis,
    raw_publish_rate,
    uvicorn_server,
)
from bench.outbound_support import configure_outbound_environment, execute, vacuum_analyze, verdict
from bench.report import Figure, bench_args, bench_main
from testkit import samples
from testkit.processes import CeleryProcess

DESCRIPTION = "Label benchmark: label API and dashboard latency on a big table, label-event processing rate."
ADMIN_TOKEN = "bench-admin-token-W3nP8sYd2"
WAHA_HMAC_KEY = "bench-waha-key"
SESSION = "default"
ACCOUNT = samples.WAHA_ME["id"]
TARGET_LABEL = "Grade A"  # the default TARGET_LABEL: the dashboard shows its contact list

GOAL_SECONDS = 0.200
WARMUP = 5  # requests, or fewer if they take more than WARMUP_SECONDS
WARMUP_SECONDS = 3.0
REQUESTS = 100
MIN_REQUESTS = 10  # a slow endpoint stops after its time budget, but never before this many
BUDGET_SECONDS = 20.0  # per endpoint
QUERY_CALLS = 20  # each dashboard data query, in process
MIN_QUERY_CALLS = 5
QUERY_BUDGET_SECONDS = 6.0
SLOW_STATEMENT_SECONDS = 0.010  # EXPLAIN ANALYZE plans are printed for statements slower than this
POST_CONCURRENCY = 8
WORKER_PROCESSES = 2
WORKER_CONCURRENCY = 2
NOOP_TASKS = 3000
DRAIN_TIMEOUT = 600.0
POLL_SECONDS = 0.01
SLOTS = 3  # labels a contact's events are drawn from

# name, weight (share of a contact's label slots), colour: from the label most contacts meet to
# one a few hundred do.
LABELS = (
    ("New customer", 300, "#64c4ff"),
    ("Follow up", 150, "#ffd429"),
    ("Grade B", 100, "#dfaef0"),
    ("Pending payment", 80, "#99b6c1"),
    ("Grade A", 70, "#55ccb3"),
    ("Paid", 60, "#ff9dff"),
    ("Order complete", 50, "#d3a91d"),
    ("Grade C", 40, "#6d7cce"),
    ("Reseller", 30, "#d7e752"),
    ("Complaint", 25, "#00d0e2"),
    ("Ask for price", 20, "#ffc5c7"),
    ("Cash on delivery", 15, "#93ceac"),
    ("VIP", 12, "#f74848"),
    ("Return request", 10, "#00a0f2"),
    ("Dropshipper", 8, "#83e422"),
    ("Bulk order", 6, "#ffaf04"),
    ("Out of town", 4, "#b5ebff"),
    ("Wholesale Surabaya", 3, "#9ba6ff"),
    ("Event Jakarta Fair", 2, "#9368cf"),
    ("Blacklist", 1, "#ff6b6b"),
)
STAFF = ("Sari", "Budi", "Dewi", "Andi", "Rina", "Agus")
# Split in SQL (string_to_array): a name is drawn at random for each contact.
FIRST_NAMES = (
    "Budi Siti Agus Dewi Rizky Putri Andi Ayu Eko Rina Fajar Wulan Hendra Nur Dian Yusuf Indah Bayu "
    "Ratna Joko Lestari Adi Sri Rudi Mega Arif Fitri Dodi Yuni Hadi"
)
LAST_NAMES = (
    "Santoso Wijaya Saputra Lestari Hidayat Pratama Nugroho Kusuma Sari Halim Setiawan Wibowo "
    "Gunawan Siregar Nasution Permana Susanto Rahman Kurniawan Putra"
)
AD_IDS = 12  # distinct ads the ad-sourced contacts came from


@dataclass(frozen=True)
class Sizes:
    contacts: int
    events: int  # label events seeded
    process: int  # label events posted and processed


FULL = Sizes(contacts=100_000, events=1_000_000, process=5000)
QUICK = Sizes(contacts=10_000, events=100_000, process=200)


# --- 1. seeding ---------------------------------------------------------------------------------

_CONTACTS = """
    INSERT INTO contacts (name, phone_e164, lead_source, referral, last_inbound_at, opted_out_at, created_at)
    SELECT first_names[1 + floor(random() * cardinality(first_names))::int] || ' '
               || last_names[1 + floor(random() * cardinality(last_names))::int],
           '+62812' || lpad(g::text, 8, '0'),
           CASE WHEN ad THEN 'ad:' || ad_id ELSE 'organic' END,
           CASE WHEN ad THEN jsonb_build_object(
               'source_url', 'https://fb.me/promo', 'source_id', ad_id::text, 'source_type', 'ad',
               'headline', 'Promo akhir tahun', 'media_type', 'image', 'ctwa_clid', 'ARAk' || g) END,
           now() - random() * interval '90 days',
           CASE WHEN random() < 0.01 THEN now() - random() * interval '30 days' END,
           now() - interval '90 days' - random() * interval '60 days'
    FROM (SELECT g, random() < 0.3 AS ad, 120210000000000001 + g % :ad_ids AS ad_id
          FROM generate_series(1, :count) AS g) AS c,
         string_to_array(:first_names, ' ') AS first_names,
         string_to_array(:last_names, ' ') AS last_names
    ORDER BY g
"""

# What identity resolution leaves for a WhatsApp sender: the wa_id digits and the E.164 phone.
_IDENTITIES = """
    INSERT INTO contact_identities (contact_id, kind, value, created_at)
    SELECT id, kind, CASE kind WHEN 'wa_id' THEN substr(phone_e164, 2) ELSE phone_e164 END, created_at
    FROM contacts, (VALUES ('wa_id'), ('phone')) AS k(kind)
    ORDER BY id, kind DESC
"""

_LABELS = """
    INSERT INTO labels (session, external_id, name, color, color_hex, as_of, created_at, updated_at)
    SELECT :session, g.n::text, (:names)[g.n], g.n - 1, (:colors)[g.n], now() - interval '100 days',
           now() - interval '100 days', now() - interval '100 days'
    FROM generate_series(1, cardinality(:names)) AS g(n)
    ORDER BY g.n  -- the number, not the text of external_id: ids follow the order of LABELS
"""

# Each contact's few labels (it may draw the same one twice), picked by the labels' weights.
_SLOTS = """
    CREATE TEMPORARY TABLE bench_slots AS
    SELECT c.id AS contact_id, s.slot,
           (SELECT min(id) FROM labels) + width_bucket(random(), :bounds) AS label_id
    FROM contacts AS c, generate_series(0, :slots - 1) AS s(slot)
"""

# Events at random times over 90 days, each for a random contact and one of its labels; per
# (contact, label) in time order they alternate given, taken away, given… The staff member is
# mostly the one who handles the contact, sometimes anyone. Inserted in time order, as they come.
_CHANGES = """
    INSERT INTO label_changes (contact_id, label_id, label_name, action, occurred_at, session, account,
                               staff, cause, applied, created_at)
    SELECT e.contact_id, e.label_id, l.name, CASE WHEN e.nth % 2 = 1 THEN 'added' ELSE 'removed' END,
           e.occurred_at, :session, :account, e.staff,
           CASE WHEN e.nth % 2 = 1 THEN 'label.chat.added' ELSE 'label.chat.deleted' END, true,
           e.occurred_at + random() * interval '2 seconds'
    FROM (
        SELECT r.contact_id, s.label_id, r.occurred_at, r.staff,
               row_number() OVER (PARTITION BY r.contact_id, s.label_id ORDER BY r.occurred_at) AS nth
        FROM (
            SELECT :first + floor(random() * :contacts)::bigint AS contact_id,
                   floor(random() * :slots)::int AS slot,
                   now() - random() * interval '90 days' AS occurred_at,
                   random() AS pick
            FROM generate_series(1, :events)
        ) AS r0
        CROSS JOIN LATERAL (
            SELECT r0.contact_id, r0.slot, r0.occurred_at,
                   (:staff)[1 + CASE WHEN r0.pick < 0.8 THEN r0.contact_id % cardinality(:staff)
                                     ELSE floor(r0.pick * 5 * cardinality(:staff))::bigint
                                          % cardinality(:staff) END] AS staff
        ) AS r
        JOIN bench_slots AS s ON s.contact_id = r.contact_id AND s.slot = r.slot
    ) AS e
    JOIN labels AS l ON l.id = e.label_id
    ORDER BY e.occurred_at
"""

# The state that history leaves: per (contact, label) the newest event decides.
_STATE = """
    INSERT INTO contact_labels (contact_id, label_id, active, changed_at, changed_by_session,
                                changed_by_staff, updated_at)
    SELECT DISTINCT ON (contact_id, label_id)
           contact_id, label_id, action = 'added', occurred_at, session, staff, created_at
    FROM label_changes
    ORDER BY contact_id, label_id, occurred_at DESC, id DESC
"""


def _bounds() -> list[float]:
    """``width_bucket`` bounds: the cumulative shares of every label but the last."""
    total = sum(weight for _, weight, _ in LABELS)
    return list(itertools.accumulate(weight / total for _, weight, _ in LABELS[:-1]))


def seed(sizes: Sizes) -> dict[str, Any]:
    """All the rows, in a few statements on one connection; returns what the later phases need."""
    from sqlalchemy import text
    from sqlalchemy.orm import Session

    from models.db import get_engine
    from pipeline import label_flow

    phase(f"1. seeding {sizes.contacts:,} contacts and {sizes.events:,} label events")
    started = time.perf_counter()
    steps = (
        ("contacts", _CONTACTS, {"count": sizes.contacts, "ad_ids": AD_IDS}),
        ("contact identities", _IDENTITIES, {}),
        ("labels", _LABELS, {"names": [n for n, _, _ in LABELS], "colors": [c for _, _, c in LABELS]}),
        ("label slots (temporary)", _SLOTS, {"bounds": _bounds(), "slots": SLOTS}),
        ("label_changes", _CHANGES, {"events": sizes.events, "slots": SLOTS, "staff": list(STAFF)}),
        ("contact_labels", _STATE, {}),
    )
    common = {
        "first_names": FIRST_NAMES,
        "last_names": LAST_NAMES,
        "session": SESSION,
        "account": ACCOUNT,
        "contacts": sizes.contacts,
    }
    with get_engine().begin() as connection:
        connection.execute(text("SET LOCAL synchronous_commit = off"))
        connection.execute(text("SET LOCAL work_mem = '256MB'"))
        for name, sql, params in steps:
            step = time.perf_counter()
            if name == "label_changes":
                first, last = connection.execute(text("SELECT min(id), max(id) FROM contacts")).one()
                if last - first != sizes.contacts - 1:
                    raise RuntimeError("contact ids are not consecutive")
                params = {**params, "first": first}
            used = {key: value for key, value in {**common, **params}.items() if f":{key}" in sql}
            rows = connection.execute(text(sql), used).rowcount
            print(f"   {name:24s} {rows:>10,} rows  {time.perf_counter() - step:6.1f} s")
        # The history was loaded in bulk, past the labels step: its daily roll-up counted at once.
        step = time.perf_counter()
        label_flow.rebuild(Session(bind=connection))
        rows = connection.execute(text("SELECT count(*) FROM label_flow_days")).scalar_one()
        print(f"   {'label_flow roll-up':24s} {rows:>10,} rows  {time.perf_counter() - step:6.1f} s")
    inserted = time.perf_counter() - started
    step = time.perf_counter()
    vacuum_analyze()
    analyzed = time.perf_counter() - step
    total = time.perf_counter() - started
    print(f"1. seeded in {inserted:.1f} s, VACUUM ANALYZE {analyzed:.1f} s: {total:.1f} s in all")
    return describe_seed()


def describe_seed() -> dict[str, Any]:
    """Per label: contacts with it now; active labels per contact; the big and the small label."""
    per_label = execute(
        """
        SELECT l.name, l.external_id, count(cl.id) FILTER (WHERE cl.active) AS active
        FROM labels AS l LEFT JOIN contact_labels AS cl ON cl.label_id = l.id
        GROUP BY l.id ORDER BY active DESC
        """
    )
    spread = execute(
        """
        SELECT n, count(*) AS contacts FROM (
            SELECT c.id, count(cl.id) AS n FROM contacts AS c
            LEFT JOIN contact_labels AS cl ON cl.contact_id = c.id AND cl.active GROUP BY c.id
        ) AS per GROUP BY n ORDER BY n
        """
    )
    totals = execute(
        """
        SELECT (SELECT count(*) FROM label_changes) AS changes,
               (SELECT count(*) FROM label_changes WHERE action = 'removed') AS removed,
               (SELECT count(*) FROM contact_labels) AS pairs,
               (SELECT count(*) FROM contact_labels WHERE active) AS active,
               (SELECT count(*) FROM contacts WHERE lead_source <> 'organic') AS from_ads,
               (SELECT count(*) FROM contact_identities) AS identities
        """
    )[0]
    print(
        f"   {totals.changes:,} label changes ({totals.removed:,} removals); {totals.pairs:,} "
        f"(contact, label) rows, {totals.active:,} active; {totals.from_ads:,} contacts from ads; "
        f"{totals.identities:,} identities"
    )
    print("   active labels per contact: " + ", ".join(f"{r.n}: {r.contacts:,}" for r in spread))
    print("   contacts per label now: " + ", ".join(f"{r.name} {r.active:,}" for r in per_label))
    big, small = per_label[0], per_label[-1]
    return {
        "big": big.name,
        "small": small.name,
        "labels": [(r.external_id, r.name) for r in per_label],
        "counts": {r.name: r.active for r in per_label},
    }


# --- 2. latency -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    name: str
    seconds: list[float]

    def p(self, percentile: int) -> float:
        if len(self.seconds) < 2:
            return self.seconds[0]
        return statistics.quantiles(self.seconds, n=100, method="inclusive")[percentile - 1]


def time_requests(port: int, path: str, headers: dict[str, str]) -> Timing:
    """GET ``path`` one at a time on one keep-alive connection: WARMUP, then up to REQUESTS
    (at least MIN_REQUESTS, else as many as fit in BUDGET_SECONDS)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def get() -> float:
        started = time.perf_counter()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path}: {response.status} {body[:300]!r}")
        return time.perf_counter() - started

    try:
        return Timing(path, _repeat(get, WARMUP, WARMUP_SECONDS, REQUESTS, MIN_REQUESTS, BUDGET_SECONDS))
    finally:
        connection.close()


def _repeat(
    call: Callable[[], float], warmup: int, warmup_seconds: float, count: int, least: int, budget: float
) -> list[float]:
    """``call()`` (returning its own duration) ``warmup`` times (or for ``warmup_seconds``), then
    ``count`` times, or as many as fit in ``budget`` seconds but at least ``least``."""
    spent = 0.0
    for _ in range(warmup):
        spent += call()
        if spent > warmup_seconds:
            break
    seconds: list[float] = []
    while len(seconds) < count and (len(seconds) < least or sum(seconds) < budget):
        seconds.append(call())
    return seconds


def time_calls(name: str, call: Callable[[], object]) -> Timing:
    def timed() -> float:
        started = time.perf_counter()
        call()
        return time.perf_counter() - started

    return Timing(name, _repeat(timed, 2, WARMUP_SECONDS, QUERY_CALLS, MIN_QUERY_CALLS, QUERY_BUDGET_SECONDS))


def _line(timing: Timing, floor: float | None = None) -> bool:
    p95 = timing.p(95)
    met = p95 < GOAL_SECONDS
    ratio = f"  {p95 / floor:6.1f}x floor" if floor else ""
    print(
        f"   {timing.name:58s} n={len(timing.seconds):3d}  p50 {timing.p(50) * 1000:7.1f} ms  "
        f"p95 {p95 * 1000:7.1f} ms{ratio}  goal p95 < {GOAL_SECONDS * 1000:.0f} ms {verdict(met)}"
    )
    return met


def in_process_calls(seeded: dict[str, Any]) -> tuple[dict[str, Callable[[], object]], ...]:
    """What each endpoint does, called in this process (the same functions, no HTTP); and the
    dashboard's data queries one by one."""
    from api import labels as data
    from api.contacts import list_contacts
    from models.db import session_scope

    def in_session(function: Callable[..., object], *args: object) -> Callable[[], object]:
        def call() -> object:
            with session_scope() as session:
                return function(session, *args)

        return call

    endpoints = {
        "contacts big": lambda: list_contacts(phone=None, label=seeded["big"], limit=50, cursor=None),
        "contacts small": lambda: list_contacts(phone=None, label=seeded["small"], limit=50, cursor=None),
        "labels": data.list_labels,
        "csv small": in_session(lambda s, label: data.segment(s, label, limit=1000), seeded["small"]),
    }
    queries = {
        "label_counts": in_session(data.label_counts),
        "label_flow 30 days (the labels page's default)": in_session(data.label_flow, 30),
        "label_flow 90 days (its maximum)": in_session(data.label_flow, 90),
        f"staff_quality {TARGET_LABEL!r}": in_session(data.staff_quality, TARGET_LABEL),
        f"lead_sources {TARGET_LABEL!r}": in_session(data.lead_sources, TARGET_LABEL),
        f"segment {TARGET_LABEL!r} (every member, as the dashboard asks)": in_session(
            data.segment, TARGET_LABEL
        ),
    }
    return endpoints, queries


def explain_slow(name: str, call: Callable[[], object], explained: set[str]) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of each statement ``call`` sends, as sent (captured from the
    engine), for those slower than SLOW_STATEMENT_SECONDS and not in ``explained`` yet. The time
    "in SQL" is execute and fetch (psycopg2 fetches every row at execute); the rest is Python."""
    from sqlalchemy import event

    from models.db import get_engine

    captured: list[tuple[str, Any, float]] = []
    starts: list[float] = []

    def before(*_: Any) -> None:
        starts.append(time.perf_counter())

    def after(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append((statement, parameters, time.perf_counter() - starts.pop()))

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    started = time.perf_counter()
    try:
        call()
    finally:
        total = time.perf_counter() - started
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    in_sql = sum(seconds for _, _, seconds in captured)
    print(
        f"   -- {name}: {total * 1000:.0f} ms, of which {in_sql * 1000:.0f} ms in {len(captured)} "
        f"statements (execute + fetch) and {(total - in_sql) * 1000:.0f} ms in Python"
    )
    for statement, parameters, seconds in captured:
        if seconds < SLOW_STATEMENT_SECONDS:
            continue
        flat = " ".join(statement.split())
        if flat in explained:
            print(f"   [{seconds * 1000:.1f} ms as sent] {flat[:100]}… (plan above)")
            continue
        explained.add(flat)
        with engine.connect() as connection:
            rows = connection.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters)
            plan = [row[0] for row in rows]
            connection.rollback()
        print(f"   [{seconds * 1000:.1f} ms as sent] {flat}")
        print(f"      parameters: {parameters}")
        for line in plan:
            print(f"      {line}")


def latency_figure(name: str, timing: Timing, floor: Timing | None = None) -> Figure:
    """p95 of one endpoint (against the HTTP floor, ``/healthz``) or one in-process query."""
    p95 = timing.p(95)
    return Figure(
        "labels",
        f"{name}, p95 (n={len(timing.seconds)})",
        p95 * 1000,
        "ms",
        floor.p(95) * 1000 if floor else None,
        "GET /healthz p95, the HTTP floor" if floor else None,
        f"< {GOAL_SECONDS * 1000:.0f} ms",
        p95 < GOAL_SECONDS,
    )


def measure_latency(port: int, seeded: dict[str, Any], figures: list[Figure]) -> dict[str, bool]:
    """Each endpoint's and data query's latency: whether it met the goal, by key; its figure
    appended to ``figures``."""
    counts = seeded["counts"]
    big, small = seeded["big"], seeded["small"]
    phase(
        f"2. latency over HTTP, one request at a time (big label {big!r}: {counts[big]:,} contacts, "
        f"small {small!r}: {counts[small]:,}, target {TARGET_LABEL!r}: {counts[TARGET_LABEL]:,})"
    )
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    floor = time_requests(port, "/healthz", {})
    _line(floor)
    paths = {
        "contacts big": f"/api/contacts?{urlencode({'label': big})}",
        "contacts small": f"/api/contacts?{urlencode({'label': small})}",
        "labels": "/api/labels",
        "dashboard": "/inbox/labels",  # the labels page (GET /dashboard redirects there)
        "csv small": f"/api/contacts.csv?{urlencode({'label': small})}",
    }
    results = {}
    for key, path in paths.items():
        timing = time_requests(port, path, auth)
        results[key] = _line(timing, floor.p(95))
        figures.append(latency_figure(f"GET {_describe_path(path, counts)}", timing, floor))
    print("   the dashboard's data queries (api.labels), called in this process, no HTTP:")
    endpoints, queries = in_process_calls(seeded)
    for key, call in queries.items():
        timing = time_calls(key, call)
        results[key] = _line(timing)
        figures.append(latency_figure(f"in process: {key}", timing))
    missed = [key for key, met in results.items() if not met]
    if missed:
        phase("2. EXPLAIN ANALYZE of what missed the goal (the dashboard: its data queries above)")
        explained: set[str] = set()
        for key in missed:
            if key in endpoints or key in queries:
                explain_slow(key, endpoints.get(key) or queries[key], explained)
    return results


def _describe_path(path: str, counts: dict[str, int]) -> str:
    """``/api/contacts?label=Paid (1,234 members)``: the label unquoted, with its size."""
    from urllib.parse import unquote_plus

    shown = unquote_plus(path)
    label = shown.partition("label=")[2]
    return f"{shown} ({counts[label]:,} members)" if label in counts else shown


# --- 3. processing rate ---------------------------------------------------------------------------


def label_event_requests(port: int, count: int, contacts: int, labels: list[tuple[str, str]]) -> list[bytes]:
    """``count`` signed ``label.chat.added`` POSTs: a random existing contact, a random label."""
    chooser = random.Random(4)
    requests = []
    now_ms = int(time.time() * 1000)
    for index in range(count):
        number = 1 + chooser.randrange(contacts)
        external_id, name = chooser.choice(labels)
        envelope = samples.waha_label_chat(
            "added",
            f"62812{number:08d}@c.us",
            external_id,
            name,
            at_ms=now_ms + index,
            metadata={"staff": chooser.choice(STAFF)},
        )
        body, headers = samples.waha_encode(envelope, WAHA_HMAC_KEY)
        lines = ["POST /webhooks/waha HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(body)}"]
        lines += [f"{key}: {value}" for key, value in headers.items()]
        requests.append(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    return requests


def post_events(port: int, sizes: Sizes, seeded: dict[str, Any]) -> float:
    phase(f"3. posting {sizes.process:,} signed WAHA label.chat.added events (no worker running)")
    requests = label_event_requests(port, sizes.process, sizes.contacts, seeded["labels"])
    run = asyncio.run(closed_loop(port, requests, POST_CONCURRENCY))
    print(
        f"3. posted {run.requests:,} in {run.seconds:.1f} s: {run.rate:.0f} req/s "
        f"({POST_CONCURRENCY} clients, uvicorn --workers 1; failures {run.failures})"
    )
    if run.failures:
        raise RuntimeError("some label events were not accepted")
    return run.rate


@dataclass(frozen=True)
class Drain:
    count: int
    startup: float
    seconds: float

    @property
    def rate(self) -> float:
        return self.count / self.seconds


@contextmanager
def workers(*extra: str) -> Iterator[list[CeleryProcess]]:
    """WORKER_PROCESSES times ``celery -A workers worker -c WORKER_CONCURRENCY`` (plus ``extra``)."""
    processes: list[CeleryProcess] = []
    try:
        for _ in range(WORKER_PROCESSES):
            name = f"bench-{uuid.uuid4().hex[:6]}"
            args = ["worker", "-n", f"{name}@%h", "-c", str(WORKER_CONCURRENCY), "-l", "INFO"]
            processes.append(
                CeleryProcess([*args, "--without-mingle", "--without-gossip", *extra], name=name)
            )
        yield processes
    finally:
        for process in processes:
            process.stop()
            process.log_path.unlink(missing_ok=True)


def drain(broker: redis.Redis, queue: str, done: Callable[[], bool], *extra: str) -> Drain:
    """Start the workers on a pre-loaded ``queue``; time their first fetch, then until ``done()``."""
    total = int(broker.llen(queue))
    if not total:
        raise RuntimeError(f"queue {queue!r} is empty: nothing to drain")
    with workers(*extra) as processes:
        launched = time.perf_counter()

        def wait(predicate: Callable[[], bool], what: str) -> float:
            deadline = time.perf_counter() + DRAIN_TIMEOUT
            while not predicate():
                for process in processes:
                    if process.process.poll() is not None:
                        raise RuntimeError(f"a worker died waiting for {what}:\n{process.output()}")
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"timed out waiting for {what}")
                time.sleep(POLL_SECONDS)
            return time.perf_counter()

        first = wait(lambda: broker.llen(queue) < total, "the first fetch")
        wait(lambda: broker.llen(queue) == 0 and broker.hlen("unacked") == 0, f"queue {queue!r} to drain")
        finished = wait(done, "the work to be done")
    return Drain(total, first - launched, finished - first)


def inbox_states() -> dict[str, int]:
    return {
        row.state: row.n for row in execute("SELECT state, count(*) AS n FROM inbox_events GROUP BY state")
    }


def measure_processing(broker: redis.Redis, sizes: Sizes) -> tuple[Drain, Drain]:
    from bench.noop import QUEUE

    setup = f"{WORKER_PROCESSES} x celery -A workers worker -c {WORKER_CONCURRENCY} (prefork)"
    tasks = NOOP_TASKS if sizes is FULL else NOOP_TASKS // 5
    phase(f"3. baseline: no-op tasks, {setup} -I bench.noop -Q {QUEUE}")
    raw_publish_rate(tasks)
    baseline = drain(broker, QUEUE, lambda: True, "-I", "bench.noop", "-Q", QUEUE)
    print(
        f"3. raw consume:  {baseline.rate:7.0f} tasks/s  ({baseline.count} no-op tasks; "
        f"{baseline.seconds:.2f} s from first fetch, start-up {baseline.startup:.1f} s)"
    )
    phase(f"3. processing the label events: {setup}, every queue")
    changes_before = execute("SELECT count(*) AS n FROM label_changes")[0].n
    result = drain(broker, "ingest", lambda: inbox_states().get("pending", 0) == 0)
    changes = execute("SELECT count(*) AS n FROM label_changes")[0].n - changes_before
    print(
        f"3. label events: {result.rate:7.0f} events/s  ({result.count} events; {result.seconds:.1f} s "
        f"from first fetch, start-up {result.startup:.1f} s; inbox rows by state {inbox_states()}; "
        f"{changes} label_changes rows written)"
    )
    print(f"3. label events / raw consume rate: {result.rate / baseline.rate:.2f}")
    return result, baseline


# --- main -----------------------------------------------------------------------------------------


def measure(quick: bool, figures: list[Figure] | None = None) -> list[Figure]:
    """Every phase in a private redis-server and a fresh database; the figures, each appended to
    ``figures`` (when given) as soon as it is measured."""
    sizes = QUICK if quick else FULL
    figures = [] if figures is None else figures
    started = time.perf_counter()
    with ExitStack() as stack:
        server = stack.enter_context(private_redis())
        database_url = stack.enter_context(bench_database())
        configure_outbound_environment(database_url, server.url)
        os.environ.update(ADMIN_TOKEN=ADMIN_TOKEN, WAHA_HMAC_KEY=WAHA_HMAC_KEY, TARGET_LABEL=TARGET_LABEL)
        from models.migrate import upgrade_to_head

        upgrade_to_head(database_url)
        broker = stack.enter_context(closing(redis.Redis.from_url(server.url)))
        seeded = seed(sizes)
        with uvicorn_server(1) as port:
            latency = measure_latency(port, seeded, figures)
            posted = post_events(port, sizes, seeded)
        figures.append(
            Figure("labels", f"label events accepted over HTTP ({POST_CONCURRENCY} clients)", posted, "/s")
        )
        processed, baseline = measure_processing(broker, sizes)
        figures.append(
            Figure(
                "labels",
                f"label events processed, {WORKER_PROCESSES} x worker -c {WORKER_CONCURRENCY}",
                processed.rate,
                "/s",
                baseline.rate,
                "raw consume, no-op task, the same workers",
            )
        )
    met = sum(latency.values())
    print(
        f"\nSummary: {met} of {len(latency)} latency figures meet p95 < {GOAL_SECONDS * 1000:.0f} ms "
        f"(missed: {', '.join(k for k, v in latency.items() if not v) or 'none'}); label events "
        f"{processed.rate:.0f}/s with {WORKER_PROCESSES} worker processes (raw no-op {baseline.rate:.0f}/s); "
        f"wall time {time.perf_counter() - started:.0f} s"
    )
    return figures


def main(argv: list[str] | None = None) -> None:
    bench_main(
        measure,
        bench_args(
            "bench.labels", DESCRIPTION, "10,000 contacts, 100,000 label events, 200 events processed", argv
        ),
    )


if __name__ == "__main__":
    main()
