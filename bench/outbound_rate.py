"""Outbound rate benchmark: how closely the shared send-rate limit holds OUTBOUND_RATE_PER_SECOND.

Everything runs on this machine against real PostgreSQL (a fresh database, migrated, dropped at
the end), a private redis-server on a free port (the limiter's key lives there too) and the fake
Cloud API (``testkit.fakes``, a real HTTP server in this process, which stamps each request's
arrival):

N contacts who wrote just now (their 24-hour window is open, so each message goes as free text)
and N ``queued`` outbox rows are inserted directly; two ``celery -A workers worker -Q outbound``
processes are started and one ``workers.outbound.send_outbound`` task per row is published with
``queueing.publish.send_outbound``. From the fake's arrival times:

- achieved rate, ``(n - 1) / (last - first)``, and its ratio to the ceiling (goal >= 0.95);
- the most requests in any sliding one-second window, computed exactly (goal <= the ceiling).

Baseline in the same run: the same N sent with the limit effectively off
(``OUTBOUND_RATE_PER_SECOND=100000``), the rate this machine can send at; the ceiling is what
limits only if that is well above it. CPU per message (worker processes, PostgreSQL backends,
this process) is printed for each run, and their sum for the unlimited run (goal <= 5 ms), so a
machine too small for the ceiling shows why.

Two more runs check the limiter itself at the issue's low ceilings, 40/s and 20/s, for about 10
seconds each (5 with --quick), against the same two goals; the unlimited run's most-in-a-second
is their baseline.

Run from the project root::

    .venv/bin/python -m bench.outbound_rate            # 3,000 messages per run
    .venv/bin/python -m bench.outbound_rate --quick    # 600
    .venv/bin/python -m bench.outbound_rate --json figures.json   # also write the figures (bench.report)

PostgreSQL is reached as ``BENCH_POSTGRES_URL`` (default: postgres on 127.0.0.1:5432). Figures are
printed, never asserted. Every process started is stopped, and the database dropped, on any exit.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

from bench.harness import bench_database, phase, private_redis
from bench.outbound_support import (
    CpuMeter,
    arrival_times,
    celery_workers,
    cloud_env,
    configure_outbound_environment,
    execute,
    insert_contacts,
    max_in_window,
    outbox_states,
    steady_rate,
    unfinished_outbox,
    verdict,
    wait_until,
)
from bench.report import Figure, bench_args, bench_main
from testkit.fakes.cloud_api import FakeCloudApi

DESCRIPTION = "Outbound rate benchmark: the shared send-rate limit against OUTBOUND_RATE_PER_SECOND."
CEILING = 200
UNLIMITED = 100_000
WORKER_PROCESSES = 2
WORKER_CONCURRENCY = 8  # prefork children each; most of a send is waiting (slot, HTTP, PostgreSQL)
TARGET_RATE_RATIO = 0.95
DRAIN_TIMEOUT = 900.0
LOW_CEILINGS = (40, 20)  # the extra runs' ceilings: what coexistence numbers and small plans get
LOW_SECONDS = 10.0  # and about how long each runs (half that with --quick)
UNLIMITED_CPU_GOAL_MS = 5.0  # per send, every process counted
UNLIMITED_RATE_GOAL = 400.0


@dataclass(frozen=True)
class Result:
    rate_limit: int
    messages: int
    requests: int
    accepted: int
    states: dict[str, int]
    publish_seconds: float
    times: list[float]
    cpu: dict[str, float]  # CPU seconds: workers, postgres, bench (the fake and the polling)

    @property
    def rate(self) -> float:
        return steady_rate(self.times)

    @property
    def max_window(self) -> int:
        return max_in_window(self.times)


def load_outbox(first_contact: int, count: int) -> list[int]:
    """One queued text message for each contact, as ``pipeline.outbox.queue`` would write it."""
    execute("TRUNCATE outbound_messages, messages, conversations CASCADE")  # and what refers to them
    execute("UPDATE contacts SET last_outbound_at = NULL, last_inbound_at = now()")
    rows = execute(
        """
        INSERT INTO outbound_messages (dedupe_key, trigger, contact_id, text, state, attempts,
                                       next_attempt_at, created_at, updated_at)
        SELECT 'bench:' || c.id, 'bench', c.id,
               'Halo ' || c.name || ', pesanan Anda sedang kami siapkan. Terima kasih!',
               'queued', 0, now(), now(), now()
        FROM contacts AS c WHERE c.id BETWEEN :first AND :last ORDER BY c.id
        RETURNING id
        """,
        first=first_contact,
        last=first_contact + count - 1,
    )
    return sorted(row.id for row in rows)


def send_all(
    rate_limit: int,
    first_contact: int,
    count: int,
    load: Callable[[int, int], list[int]] = load_outbox,
    env: dict[str, str] | None = None,
) -> Result:
    """Publish one send task per outbox row (``load`` writes them: text messages by default) to
    two running workers with ``env`` added to theirs; wait until none is unfinished. Only
    message sends count in the times (not a media upload)."""
    from queueing.publish import send_outbound as publish

    ids = load(first_contact, count)
    with FakeCloudApi() as fake:
        env = {**cloud_env(fake), "OUTBOUND_RATE_PER_SECOND": str(rate_limit), **(env or {})}
        with celery_workers(WORKER_PROCESSES, WORKER_CONCURRENCY, "outbound", env) as workers:
            meter = CpuMeter(workers).start()
            started = time.perf_counter()
            publish(ids)
            publish_seconds = time.perf_counter() - started
            wait_until(
                lambda: unfinished_outbox() == 0,
                workers,
                DRAIN_TIMEOUT,
                "every message to be sent",
                lambda: f"(outbox {outbox_states()}, fake accepted {len(fake.accepted)})",
                progress=lambda: len(fake.requests),
            )
            cpu = meter.stop()
        return Result(
            rate_limit=rate_limit,
            messages=count,
            requests=len(fake.requests),
            accepted=len(fake.accepted),
            states=outbox_states(),
            publish_seconds=publish_seconds,
            times=arrival_times(fake, "/messages"),
            cpu=cpu,
        )


def report(label: str, result: Result) -> None:
    times = result.times
    per_message = {group: seconds / result.messages * 1000 for group, seconds in result.cpu.items()}
    print(
        f"{label}: {result.rate:7.1f} /s first to last request, max {result.max_window} in any 1 s window "
        f"({result.requests} requests, {result.accepted} accepted in {times[-1] - times[0]:.1f} s; "
        f"outbox {result.states}; published in {result.publish_seconds:.1f} s)"
    )
    print(
        f"{label}: CPU per message: workers {per_message['workers']:.1f} ms, PostgreSQL "
        f"{per_message['postgres']:.1f} ms, fake Cloud API + bench {per_message['bench']:.1f} ms; "
        f"all {sum(per_message.values()):.1f} ms"
    )
    if result.rate_limit < UNLIMITED:
        from integrations.whatsapp.rate_limit import RateLimiter

        gaps = [b - a for a, b in itertools.pairwise(times)]
        from settings import settings

        # As the workers space slots (their guard is the same setting, read from the same environment).
        spacing = RateLimiter(result.rate_limit, None, guard=settings.outbound_rate_guard_seconds)
        interval = spacing.interval_us / 1e6
        print(
            f"{label}: gaps between arrivals: median {statistics.median(gaps) * 1000:.2f} ms, "
            f"min {min(gaps) * 1000:.2f} ms; the limiter's slot interval {interval * 1000:.2f} ms; "
            f"{sum(gap < interval / 2 for gap in gaps)} of {len(gaps)} gaps under half an interval"
        )


def check(label: str, result: Result) -> tuple[bool, bool]:
    """The two goals for one limited run: rate >= 0.95 of the ceiling, no 1 s window above it."""
    ratio = result.rate / result.rate_limit
    rate_ok, window_ok = ratio >= TARGET_RATE_RATIO, result.max_window <= result.rate_limit
    print(
        f"  {label}: achieved / ceiling   {ratio:6.3f}   target >= {TARGET_RATE_RATIO:g}   {verdict(rate_ok)}"
    )
    print(
        f"  {label}: max in a 1 s window  {result.max_window:6d}   target <= {result.rate_limit:<4d}  "
        f"{verdict(window_ok)}"
    )
    return rate_ok, window_ok


def limited_figures(result: Result, unlimited: Result) -> list[Figure]:
    """A limited run's two goals, each against the unlimited run (what this machine sends)."""
    ceiling = result.rate_limit
    return [
        Figure(
            "outbound rate",
            f"ceiling {ceiling}/s: achieved send rate ({result.messages:,} messages)",
            result.rate,
            "/s",
            unlimited.rate,
            "the same messages with no limit",
            f">= {TARGET_RATE_RATIO * ceiling:g}/s ({TARGET_RATE_RATIO:g} of the ceiling)",
            result.rate / ceiling >= TARGET_RATE_RATIO,
        ),
        Figure(
            "outbound rate",
            f"ceiling {ceiling}/s: most requests in any 1 s window",
            result.max_window,
            "",
            unlimited.max_window,
            "the same with no limit",
            f"<= {ceiling}",
            result.max_window <= ceiling,
        ),
    ]


def cpu_ms_per_send(result: Result) -> float:
    """CPU per message over every process counted: workers, PostgreSQL, the fake and the bench."""
    return sum(result.cpu.values()) / result.messages * 1000


def unlimited_figures(unlimited: Result, limited: Result) -> list[Figure]:
    """What sending costs with no ceiling, against the 200/s run of the same messages."""
    return [
        Figure(
            "outbound rate",
            f"no ceiling: sends per second ({unlimited.messages:,} messages, {WORKER_PROCESSES} processes)",
            unlimited.rate,
            "/s",
            limited.rate,
            f"the same with a {limited.rate_limit}/s ceiling",
            f">= {UNLIMITED_RATE_GOAL:g}/s",
            unlimited.rate >= UNLIMITED_RATE_GOAL,
        ),
        Figure(
            "outbound rate",
            "no ceiling: CPU per send, every process",
            cpu_ms_per_send(unlimited),
            "ms",
            cpu_ms_per_send(limited),
            f"the same with a {limited.rate_limit}/s ceiling",
            f"<= {UNLIMITED_CPU_GOAL_MS:g} ms",
            cpu_ms_per_send(unlimited) <= UNLIMITED_CPU_GOAL_MS,
        ),
    ]


def measure(quick: bool, figures: list[Figure] | None = None) -> list[Figure]:
    """The runs in a private redis-server and a fresh database; the figures, each appended to
    ``figures`` (when given) as soon as it is measured."""
    figures = [] if figures is None else figures
    count = 600 if quick else 3000
    started = time.perf_counter()
    workers = f"{WORKER_PROCESSES} x celery worker -c {WORKER_CONCURRENCY} -Q outbound (prefork)"
    with ExitStack() as stack:
        server = stack.enter_context(private_redis())
        database_url = stack.enter_context(bench_database())
        configure_outbound_environment(database_url, server.url)
        from models.migrate import upgrade_to_head

        upgrade_to_head(database_url)
        first_contact = insert_contacts(count, window_open=True)
        phase(f"baseline: {count} text messages, OUTBOUND_RATE_PER_SECOND={UNLIMITED} (no limit), {workers}")
        unlimited = send_all(UNLIMITED, first_contact, count)
        report("unlimited", unlimited)
        phase(f"limited: {count} text messages, OUTBOUND_RATE_PER_SECOND={CEILING}, {workers}")
        limited = send_all(CEILING, first_contact, count)
        report(f"limit {CEILING}", limited)
        figures += unlimited_figures(unlimited, limited)
        figures += limited_figures(limited, unlimited)
        low: list[Result] = []
        for ceiling in LOW_CEILINGS:
            small = min(count, int(ceiling * LOW_SECONDS / (2 if quick else 1)))
            phase(f"limiter accuracy: {small} text messages, OUTBOUND_RATE_PER_SECOND={ceiling}, {workers}")
            low.append(send_all(ceiling, first_contact, small))
            report(f"limit {ceiling}", low[-1])
            figures += limited_figures(low[-1], unlimited)

    print(
        f"\nSummary: unlimited {unlimited.rate:.1f} /s, {cpu_ms_per_send(unlimited):.1f} ms CPU per send "
        f"(every process; goal <= {UNLIMITED_CPU_GOAL_MS:g}); "
        f"ceiling {CEILING} /s achieved {limited.rate:.1f} /s "
        f"(ceiling / unlimited {CEILING / unlimited.rate:.2f}); "
        + "; ".join(f"ceiling {r.rate_limit} /s: most in a second {r.max_window}" for r in low)
        + f"; wall time {time.perf_counter() - started:.0f} s"
    )
    print(
        f"  unlimited: sends/s {unlimited.rate:8.1f}   target >= {UNLIMITED_RATE_GOAL:g}   "
        f"{verdict(unlimited.rate >= UNLIMITED_RATE_GOAL)}"
    )
    check(f"limit {CEILING}", limited)
    if unlimited.rate < CEILING:
        print(
            f"  the unlimited rate ({unlimited.rate:.0f} /s) is below {CEILING} /s: this machine cannot send "
            f"{CEILING} /s, so that rate goal cannot be met here whatever the limiter does"
        )
    for result in low:
        check(f"limit {result.rate_limit}", result)
    return figures


def main(argv: list[str] | None = None) -> None:
    bench_main(
        measure, bench_args("bench.outbound_rate", DESCRIPTION, "600 messages per run instead of 3,000", argv)
    )


if __name__ == "__main__":
    main()
