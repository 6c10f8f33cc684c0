"""Follow-up benchmark: 10,000 delivery follow-ups due at the same moment, and beat's tick cost.

Everything runs on this machine against real PostgreSQL (a fresh database, migrated, dropped at
the end), a private redis-server on a free port and the fake Cloud API (``testkit.fakes``, a real
HTTP server in this process):

(a) burst: 10,000 contacts whose 24-hour window is closed (so each follow-up goes out as the
    ``order_delivery_followup`` template), 10,000 shipped orders due today, and one scheduled
    follow-up each, all due at the same moment T a few seconds ahead. Two
    ``celery -A workers worker -Q outbound,schedules`` processes and one ``celery -A workers beat``
    (``FOLLOWUP_TICK_SECONDS=1``) fire and send them, with ``OUTBOUND_RATE_PER_SECOND`` set high
    enough not to be the bottleneck. Reported: whether every follow-up reached the fake exactly
    once (by the order id in the template's parameters, and by the outbox rows), the time from T
    to the last send as seen by the fake, and the send rate.
(b) tick cost: ``fire_due_followups()`` called in this process when nothing is due, with 10
    future follow-ups in the table (the baseline) and then with 1,000,000; the median of 20
    calls each, their ratio (the claim goes through the partial index over scheduled rows, so
    the goal is about 1x), and EXPLAIN ANALYZE of the claim query as the task sends it.

Run from the project root::

    .venv/bin/python -m bench.followups            # full size, a few minutes
    .venv/bin/python -m bench.followups --quick    # 500 follow-ups, 20,000 future rows
    .venv/bin/python -m bench.followups --json figures.json   # also write the figures (bench.report)

PostgreSQL is reached as ``BENCH_POSTGRES_URL`` (default: postgres on 127.0.0.1:5432). Figures are
printed, never asserted. Every process started is stopped, and the database dropped, on any exit.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench.harness import bench_database, phase, private_redis
from bench.outbound_support import (
    CpuMeter,
    arrival_times,
    celery_beat,
    celery_workers,
    cloud_env,
    configure_outbound_environment,
    execute,
    insert_contacts,
    outbox_states,
    steady_rate,
    vacuum_analyze,
    verdict,
    wait_until,
)
from bench.report import Figure, bench_args, bench_main
from testkit.fakes.cloud_api import FakeCloudApi

DESCRIPTION = "Follow-up benchmark: many delivery follow-ups due at once, and beat's tick cost."
WORKER_PROCESSES = 2
WORKER_CONCURRENCY = 4  # prefork children each; a send mostly waits on HTTP and PostgreSQL
QUEUES = "outbound,schedules"
RATE_PER_SECOND = 100_000  # far above what the machine can send: not the bottleneck
TICK_SECONDS = 1
DUE_IN_SECONDS = 3.0  # T is this far ahead when the follow-ups are inserted
BURST_TIMEOUT = 900.0
TICK_WARMUP = 5
TICK_CALLS = 20
BASELINE_FUTURE = 10
TEMPLATE = "order_delivery_followup"
TARGET_TICK_RATIO = 1.5


@dataclass(frozen=True)
class Sizes:
    burst: int  # follow-ups due at once
    future: int  # follow-ups in the future for the tick cost


FULL = Sizes(burst=10_000, future=1_000_000)
QUICK = Sizes(burst=500, future=20_000)


# --- rows ---------------------------------------------------------------------------------------

_ORDERS = """
    INSERT INTO orders (external_id, contact_id, stage, total, currency, estimated_delivery_date,
                        ordered_at, paid_at, shipped_at, created_at, updated_at)
    SELECT :prefix || lpad(g::text, 8, '0'), :first_contact + (g - 1) % :contacts, 'shipped',
           150000, 'IDR', (now() AT TIME ZONE 'Asia/Jakarta')::date, now(), now(), now(), now(), now()
    FROM generate_series(:start, :stop) AS g
"""


def insert_orders(prefix: str, count: int, first_contact: int, contacts: int) -> None:
    """``count`` shipped orders due today, ``prefix0000001``…, spread over the contacts."""
    execute(_ORDERS, prefix=prefix, start=1, stop=count, first_contact=first_contact, contacts=contacts)


def schedule_followups(prefix: str, due: datetime) -> int:
    """A scheduled follow-up due at ``due`` for every order whose id starts with ``prefix``."""
    rows = execute(
        """
        INSERT INTO delivery_followups (order_id, due_at, state, created_at, updated_at)
        SELECT id, :due, 'scheduled', now(), now() FROM orders WHERE external_id LIKE :prefix || '%'
        RETURNING id
        """,
        due=due,
        prefix=prefix,
    )
    return len(rows)


def add_future_followups(start: int, stop: int, first_contact: int, contacts: int) -> None:
    """Orders ``start``..``stop`` with a follow-up each, due between an hour and 30 days ahead:
    one statement, the orders and their follow-ups generated in SQL."""
    execute(
        f"""
        WITH new_orders AS ({_ORDERS} RETURNING id)
        INSERT INTO delivery_followups (order_id, due_at, state, created_at, updated_at)
        SELECT id, now() + interval '1 hour' + (id % 2592000) * interval '1 second', 'scheduled',
               now(), now()
        FROM new_orders
        """,
        prefix="SO-F",
        start=start,
        stop=stop,
        first_contact=first_contact,
        contacts=contacts,
    )
    vacuum_analyze("orders", "delivery_followups")


def progress() -> Any:
    return execute(
        """
        SELECT (SELECT count(*) FROM delivery_followups WHERE state = 'scheduled') AS scheduled,
               (SELECT count(*) FROM outbound_messages WHERE state IN ('queued', 'sending')) AS unfinished,
               (SELECT count(*) FROM outbound_messages WHERE state = 'sent') AS sent
        """
    )[0]


@dataclass(frozen=True)
class Burst:
    """What the fake saw of the burst: follow-ups sent exactly once, T to the last send, the rate."""

    followups: int
    exactly_once: int  # orders whose follow-up reached the fake exactly once
    once: bool  # every one of them, and the outbox agrees
    span: float  # seconds from T to the last send (nan if nothing was sent)
    rate: float  # sends per second from T to the last send


# --- (a) the burst ------------------------------------------------------------------------------


def measure_burst(sizes: Sizes, fake: FakeCloudApi) -> tuple[Burst, int]:
    """Fire and send ``sizes.burst`` follow-ups due at once; whether each went exactly once.
    Returns that and the first contact id (the tick phase reuses the contacts)."""
    n = sizes.burst
    phase(f"(a) burst: {n} follow-ups due at the same moment")
    started = time.perf_counter()
    first_contact = insert_contacts(n, window_open=False)
    insert_orders("SO-B", n, first_contact, n)
    seconds = time.perf_counter() - started
    print(f"(a) inserted {n} contacts (window closed) and {n} shipped orders in {seconds:.1f} s")
    env = {
        **cloud_env(fake),
        "OUTBOUND_RATE_PER_SECOND": str(RATE_PER_SECOND),
        "FOLLOWUP_TICK_SECONDS": str(TICK_SECONDS),
    }
    print(
        f"(a) {WORKER_PROCESSES} x celery worker -c {WORKER_CONCURRENCY} -Q {QUEUES} (prefork) and "
        f"celery beat; FOLLOWUP_TICK_SECONDS={TICK_SECONDS}, OUTBOUND_RATE_PER_SECOND={RATE_PER_SECOND}"
    )
    launched = time.perf_counter()
    with (
        celery_workers(WORKER_PROCESSES, WORKER_CONCURRENCY, QUEUES, env) as workers,
        celery_beat(env) as beat,
    ):
        print(f"(a) workers and beat up in {time.perf_counter() - launched:.1f} s")
        meter = CpuMeter([*workers, beat]).start()
        due_at = time.time() + DUE_IN_SECONDS
        scheduled = schedule_followups("SO-B", datetime.fromtimestamp(due_at, UTC))
        lead = due_at - time.time()
        print(f"(a) {scheduled} follow-ups scheduled, due at T = now + {lead:.2f} s")
        done = wait_until(
            lambda: (p := progress()).scheduled == 0 and p.unfinished == 0,
            [*workers, beat],
            BURST_TIMEOUT,
            "every follow-up to be fired and sent",
            lambda: f"(progress {progress()._asdict()}, fake accepted {len(fake.accepted)})",
            progress=lambda: (len(fake.requests), progress().scheduled),
        )
        cpu = meter.stop()
    burst = report_burst(n, fake, due_at, done)
    per = {group: seconds / n * 1000 for group, seconds in cpu.items()}
    print(
        f"(a) CPU per follow-up (fired and sent): workers and beat {per['workers']:.1f} ms, "
        f"PostgreSQL {per['postgres']:.1f} ms, fake Cloud API + bench {per['bench']:.1f} ms"
    )
    return burst, first_contact


def report_burst(n: int, fake: FakeCloudApi, due_at: float, done: float) -> Burst:
    times = arrival_times(fake)
    accepted = list(fake.accepted)
    order_ids = [_order_id(body) for body in accepted]
    counts = Counter(order_ids)
    duplicates = sum(c - 1 for c in counts.values())
    expected = {f"SO-B{i:08d}" for i in range(1, n + 1)}
    missing = len(expected - counts.keys())
    kinds = Counter(body.get("type") for body in accepted)
    fired = execute(
        "SELECT min(fired_at) AS first, max(fired_at) AS last, count(*) AS n FROM delivery_followups "
        "WHERE state = 'fired'"
    )[0]
    sent = execute(
        "SELECT count(*) AS n, count(DISTINCT order_id) AS orders FROM outbound_messages WHERE state = 'sent'"
    )[0]
    states = outbox_states()
    print(
        f"(a) fake: {len(fake.requests)} requests, {len(accepted)} accepted ({dict(kinds)}), "
        f"{len(counts)} distinct order ids, {duplicates} duplicates, {missing} of {n} orders missing"
    )
    print(
        f"(a) outbox: {states}; sent rows {sent.n} for {sent.orders} distinct orders; "
        f"follow-ups fired {fired.n}"
    )
    if fired.n:
        print(
            f"(a) fired (fired_at): from T{fired.first.timestamp() - due_at:+.2f} s "
            f"to T{fired.last.timestamp() - due_at:+.2f} s"
        )
    if times:
        span = times[-1] - due_at
        print(
            f"(a) sends seen by the fake: first at T{times[0] - due_at:+.2f} s, last at T{span:+.2f} s; "
            f"T to last send {span:.1f} s"
        )
        print(
            f"(a) send rate: {len(times) / span:.0f} /s from T to the last send, "
            f"{steady_rate(times):.0f} /s from the first send to the last"
        )
    print(f"(a) all done (outbox settled) at T{done - due_at:+.1f} s")
    once = len(accepted) == n == len(counts) == sent.n == sent.orders and duplicates == 0 and missing == 0
    print(f"  every follow-up sent exactly once: {verdict(once)}")
    exactly_once = sum(1 for order, count in counts.items() if count == 1 and order in expected)
    span = times[-1] - due_at if times else math.nan
    rate = len(times) / span if times and span > 0 else math.nan
    return Burst(n, exactly_once, once, span, rate)


def burst_figures(burst: Burst) -> list[Figure]:
    n = burst.followups
    return [
        Figure(
            "followups",
            f"burst: follow-ups due at once sent exactly once (of {n:,})",
            burst.exactly_once,
            "",
            goal=f"all {n:,}, no duplicate",
            met=burst.once,
        ),
        Figure("followups", "burst: from T (all due) to the last send", burst.span, "s"),
        Figure("followups", "burst: send rate from T to the last send", burst.rate, "/s"),
    ]


def _order_id(body: dict[str, Any]) -> str | None:
    template = body.get("template") or {}
    if template.get("name") != TEMPLATE:
        return None
    parameters = template["components"][0]["parameters"]
    return parameters[1]["text"]


# --- (b) the tick cost ----------------------------------------------------------------------------


def time_ticks() -> tuple[float, float]:
    """Median and minimum seconds of ``fire_due_followups()`` with nothing due."""
    from schedules.followups import fire_due_followups

    for _ in range(TICK_WARMUP):
        if fire_due_followups() != 0:
            raise RuntimeError("a follow-up was due: the tick cost must be measured with nothing due")
    samples = []
    for _ in range(TICK_CALLS):
        started = time.perf_counter()
        fire_due_followups()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), min(samples)


def explain_claim() -> list[str]:
    """EXPLAIN ANALYZE of the claim exactly as ``fire_due_followups`` sends it (captured from the
    engine), run in a transaction that is rolled back."""
    from sqlalchemy import event

    from models.db import get_engine
    from schedules.followups import fire_due_followups

    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "delivery_followups" in statement and "FOR UPDATE" in statement:
            captured.append((statement, parameters))

    engine = get_engine()
    event.listen(engine, "before_cursor_execute", capture)
    try:
        fire_due_followups()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    statement, parameters = captured[0]
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters)
        plan = [row[0] for row in rows]
        connection.rollback()
    return [" ".join(statement.split()), *plan]


def measure_tick_cost(sizes: Sizes, first_contact: int, contacts: int) -> Figure:
    """Tick cost with few and with many future follow-ups; the few measured before and after the
    many (TRUNCATE makes that cheap), so drift in the machine's load shows and averages out."""
    phase(f"(b) beat tick cost with nothing due: {BASELINE_FUTURE} vs {sizes.future} future follow-ups")
    execute("TRUNCATE delivery_followups")
    vacuum_analyze()  # the whole database: the burst's clean-up done before anything is timed
    add_future_followups(1, BASELINE_FUTURE, first_contact, contacts)
    before = time_ticks()
    _print_tick(BASELINE_FUTURE, *before)
    _print_plan(explain_claim())
    started = time.perf_counter()
    add_future_followups(BASELINE_FUTURE + 1, sizes.future, first_contact, contacts)
    total = execute("SELECT count(*) AS n FROM delivery_followups WHERE state = 'scheduled'")[0].n
    seconds = time.perf_counter() - started
    print(f"(b) inserted {total - BASELINE_FUTURE} more orders and follow-ups in {seconds:.1f} s")
    many = time_ticks()
    _print_tick(total, *many)
    _print_plan(explain_claim())
    execute("TRUNCATE delivery_followups")
    add_future_followups(sizes.future + 1, sizes.future + BASELINE_FUTURE, first_contact, contacts)
    after = time_ticks()
    _print_tick(BASELINE_FUTURE, *after, "again")
    baseline = (before[0] + after[0]) / 2
    ratio = many[0] / baseline
    print(
        f"(b) tick cost ratio {total} / {BASELINE_FUTURE} future follow-ups: {ratio:.2f}x "
        f"(against the mean of the two baseline medians)   target <= {TARGET_TICK_RATIO:g}x (about 1x) "
        f"{verdict(ratio <= TARGET_TICK_RATIO)}"
    )
    return Figure(
        "followups",
        f"beat tick with nothing due, {total:,} future follow-ups (median)",
        many[0] * 1000,
        "ms",
        baseline * 1000,
        f"same with {BASELINE_FUTURE} future follow-ups, mean of before and after",
        f"ratio <= {TARGET_TICK_RATIO:g} (about 1)",
        ratio <= TARGET_TICK_RATIO,
    )


def _print_tick(future: int, median: float, minimum: float, note: str = "") -> None:
    label = f"{future:>9} future follow-ups{note and ' ' + note}"
    print(f"(b) {label}: tick {median * 1000:7.3f} ms median (min {minimum * 1000:.3f} ms)")


def _print_plan(lines: list[str]) -> None:
    statement, *plan = lines
    print(f"    claim query: {statement}")
    for line in plan:
        print(f"      {line}")


# --- main -----------------------------------------------------------------------------------------


def measure(quick: bool, figures: list[Figure] | None = None) -> list[Figure]:
    """Both phases in a private redis-server and a fresh database; the figures, each appended to
    ``figures`` (when given) as soon as it is measured."""
    sizes = QUICK if quick else FULL
    figures = [] if figures is None else figures
    started = time.perf_counter()
    with ExitStack() as stack:
        server = stack.enter_context(private_redis())
        database_url = stack.enter_context(bench_database())
        fake = stack.enter_context(FakeCloudApi())
        configure_outbound_environment(database_url, server.url)
        from models.migrate import upgrade_to_head

        upgrade_to_head(database_url)
        burst, first_contact = measure_burst(sizes, fake)
        figures += burst_figures(burst)
        tick = measure_tick_cost(sizes, first_contact, sizes.burst)
        figures.append(tick)
    print(
        f"\nSummary: {sizes.burst} follow-ups due at once sent exactly once: {verdict(burst.once)}; "
        f"tick cost {sizes.future} / {BASELINE_FUTURE} future rows {tick.ratio:.2f}x; "
        f"wall time {time.perf_counter() - started:.0f} s"
    )
    return figures


def main(argv: list[str] | None = None) -> None:
    bench_main(
        measure, bench_args("bench.followups", DESCRIPTION, "500 follow-ups and 20,000 future rows", argv)
    )


if __name__ == "__main__":
    main()
