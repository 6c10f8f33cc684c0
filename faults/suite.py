"""One fault-injection run: start everything, send the events under chaos, drain, count, report.

Run from the project root::

    .venv/bin/python -m faults                         # 5,000 events, 2 workers
    .venv/bin/python -m faults --events 600 --seed 7   # the short form CI runs

The run passes (exit 0) when no accepted event and no expected automated message is lost, no
message reached the Cloud API twice, no order's messages reached it out of stage order, the
state the events built is consistent, every fault kind
was injected, and everything drained within ``--drain-timeout`` seconds of the last accepted
event. PostgreSQL is reached as ``FAULTS_POSTGRES_URL`` (else ``TEST_POSTGRES_URL``, else
postgres on 127.0.0.1:5432). Every process started is stopped, the Redis and the database are
removed, on any exit; the logs are kept (and their folder printed) only when the run fails or
``--keep-logs`` is given.

The sender is held back while the inbox backlog is longer than the workers clear in half of
INBOX_SWEEP_AFTER_SECONDS (``ledger.Backpressure``): the inbox sweeper cannot tell a lost task
from a queued one, and on a queue older than that it re-publishes every pending event, which is
a throughput problem of its own (``--no-backpressure --inbox-sweep-after 10`` shows it), not
what this suite measures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from faults import chaos as chaos_module
from faults import processes
from faults.cloud import RecordingCloudApi
from faults.environment import TIMINGS, configure, scratch_database
from faults.processes import Redis, Supervisor
from faults.traffic import Sender, Traffic
from testkit.processes import free_port

DESCRIPTION = "Fault injection: events flow while workers, Redis, PostgreSQL and the Cloud API fail."


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m faults", description=DESCRIPTION)
    parser.add_argument("--events", type=int, default=5000, help="distinct events to send (default 5000)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: drawn, and printed)")
    parser.add_argument("--workers", type=int, default=2, help="celery worker processes (default 2)")
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes per worker (default 2)")
    parser.add_argument("--rate", type=float, default=40.0, help="webhook deliveries per second (default 40)")
    parser.add_argument("--senders", type=int, default=4, help="concurrent HTTP senders (default 4)")
    parser.add_argument(
        "--faults", type=int, default=None, help="faults to inject (default: 1 per 150 events, at least 9)"
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=300.0, help="seconds allowed to drain after the last event"
    )
    parser.add_argument(
        "--inbox-sweep-after",
        type=float,
        default=float(TIMINGS["INBOX_SWEEP_AFTER_SECONDS"]),
        help=f"INBOX_SWEEP_AFTER_SECONDS of the run (default {TIMINGS['INBOX_SWEEP_AFTER_SECONDS']})",
    )
    parser.add_argument(
        "--no-backpressure",
        action="store_true",
        help="send at --rate whatever the backlog (shows the sweeper re-publishing queued events)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.events < 50:
        parser.error("--events must be at least 50")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 10**6)
    if args.faults is None:
        args.faults = max(len(chaos_module.KINDS), args.events // 150)
    return args


class Log:
    """Timestamped progress lines, relative to the start of the run."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, line: str) -> None:
        print(f"[{time.monotonic() - self.started:7.1f} s] {line}", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the clean-up below runs
    logs = Path(tempfile.mkdtemp(prefix="wacrm-faults-logs-"))
    keep = args.keep_logs
    try:
        with ExitStack() as stack:
            passed = run(args, stack, logs)
            keep = keep or not passed
            return 0 if passed else 1
    except BaseException:
        keep = True
        raise
    finally:
        if keep:
            print(f"logs kept in {logs}")
        else:
            shutil.rmtree(logs, ignore_errors=True)


def run(args: argparse.Namespace, stack: ExitStack, logs: Path) -> bool:
    log = Log()
    print(
        f"Fault injection: {args.events} events, seed {args.seed}, {args.workers} x celery worker "
        f"-c {args.concurrency}, 1 beat, uvicorn; {args.rate:g} deliveries/s from {args.senders} senders; "
        f"{args.faults} faults  [load average {os.getloadavg()[0]:.2f}]"
    )
    redis = Redis().start()
    stack.callback(redis.close)
    database, database_url = stack.enter_context(scratch_database())
    cloud = RecordingCloudApi()
    stack.callback(cloud.close)
    configure(database_url, redis.url, cloud.env(), INBOX_SWEEP_AFTER_SECONDS=f"{args.inbox_sweep_after:g}")

    from faults import ledger
    from models.migrate import upgrade_to_head

    upgrade_to_head(database_url)
    log(f"database {database} migrated; redis-server on port {redis.port}; fake Cloud API on {cloud.port}")

    api_port = free_port()
    api = processes.api(api_port, logs)
    workers = [processes.worker(n, args.concurrency, logs) for n in range(1, args.workers + 1)]
    beat = processes.beat(logs)
    children = [api, *workers, beat]
    for child in children:
        stack.callback(child.stop)
        child.start()
    for child in children:
        child.wait_ready()
    log("API, workers and beat ready")

    supervisor = Supervisor(children, redis, on_event=log).start()
    stack.callback(supervisor.stop)
    rng = random.Random(args.seed)
    traffic = Traffic(args.events, rng.randrange(2**31), cloud)
    schedule = chaos_module.plan(args.events, args.faults, rng)
    backpressure = ledger.Backpressure(args.inbox_sweep_after, enabled=not args.no_backpressure).start()
    stack.callback(backpressure.stop)
    sender = Sender(traffic, f"http://127.0.0.1:{api_port}", args.senders, args.rate, backpressure.gate)
    chaos = chaos_module.Chaos(
        schedule, lambda: traffic.produced, workers, beat, redis, database, cloud, rng, log
    )
    stack.callback(chaos.stop)

    log(f"sending {args.events} events ({len(traffic.customers)} customers)")
    sender.start()
    chaos.start()
    next_report = time.monotonic() + 10
    while sender.running():
        time.sleep(0.2)
        if time.monotonic() >= next_report:
            next_report += 10
            accepted = sum(1 for r in list(traffic.records.values()) if r.accepted_at is not None)
            log(f"events handed out {traffic.produced}, accepted {accepted}; {_state(ledger)}")
    sender.join()
    chaos.stop()
    backpressure.stop()
    flow_seconds = time.time() - (sender.stats.first_sent_at or time.time())
    last_accepted = sender.stats.last_accepted_at or time.time()
    log(
        f"all events sent in {flow_seconds:.1f} s (held back {backpressure.paused_seconds:.0f} s while the "
        f"backlog was long); {len(chaos.injected)} faults injected; draining"
    )

    deadline = time.monotonic() + args.drain_timeout
    next_report = time.monotonic() + 10
    drained_at = None
    while time.monotonic() < deadline:
        try:
            if ledger.drained():
                drained_at = time.time()
                break
        except Exception as exc:  # the monitor's own connection may have been cut: look again
            log(f"drain check failed: {type(exc).__name__}")
        if time.monotonic() >= next_report:
            next_report += 10
            log(f"draining: {_state(ledger)}")
        time.sleep(0.25)
    supervisor.stop()
    figures = ledger.collect(traffic, cloud)
    activity = ledger.worker_activity([p.read_text(errors="replace") for w in workers for p in w.log_paths])
    drain_seconds = None if drained_at is None else max(0.0, drained_at - last_accepted)
    flow = (flow_seconds, backpressure.paused_seconds)
    return report(args, traffic, sender, chaos, supervisor, figures, activity, flow, drain_seconds, redis)


def _state(ledger) -> str:  # type: ignore[no-untyped-def]
    """What is still on its way, for the progress lines (never fatal)."""
    try:
        return str(ledger.drain_state())
    except Exception as exc:
        return f"(monitor: {type(exc).__name__})"


def report(
    args: argparse.Namespace,
    traffic: Traffic,
    sender: Sender,
    chaos: chaos_module.Chaos,
    supervisor: Supervisor,
    figures,  # type: ignore[no-untyped-def]
    activity: dict[str, int],
    flow: tuple[float, float],
    drain_seconds: float | None,
    redis: Redis,
) -> bool:
    stats = sender.stats
    print("\nFaults injected during the flow")
    injected = {kind: 0 for kind in chaos_module.KINDS}
    for fault in chaos.injected:
        injected[fault.kind] += 1
    for kind, count in injected.items():
        print(f"  {kind:<15} {chaos_module.DESCRIPTIONS[kind]:<40} {count:>4}")
    restarts = ", ".join(f"{name} {n}" for name, n in sorted(supervisor.restarts.items())) or "none"
    print(f"  restarted by the supervisor: {restarts}")
    for error in chaos.errors:
        print(f"  could not inject: {error}")

    answers = ", ".join(f"{k} x{v}" for k, v in sorted(stats.answers.items()))
    print("\nTraffic")
    print(
        f"  deliveries {stats.deliveries} ({traffic.replays} replays of an event id), "
        f"HTTP attempts {stats.attempts}"
    )
    print(f"  flow: {flow[0]:.0f} s, of which the sender was held back {flow[1]:.0f} s (backpressure)")
    print(f"  answers: {answers}")
    print(f"  events answered as duplicates: {stats.duplicates_answered}; given up: {stats.given_up}")
    print("  accepted by kind: " + ", ".join(f"{k} {v}" for k, v in sorted(figures.by_kind.items())))
    expected = ", ".join(f"{k} {v}" for k, v in sorted(figures.expected_messages.items()))
    print(f"  automated messages expected: {expected}")
    print(
        f"  order steps whose message the out-of-order rule withholds (a later step was processed "
        f"first): {figures.suppressed_by_order}"
    )
    print(f"  workers: {', '.join(f'{k} {v}' for k, v in sorted(activity.items()))}")
    print(
        f"  fake Cloud API: {figures.fake_requests} send requests, {figures.fake_accepted} accepted; "
        f"outbox rows by state: {dict(sorted(figures.outbox_states.items()))}"
    )

    total_expected = sum(figures.expected_messages.values())
    unconfirmed_causes = ", ".join(f"{k} {v}" for k, v in sorted(figures.unconfirmed_causes.items()))
    drained = drain_seconds is not None
    every_kind = all(injected.values())
    rows = [
        ("events accepted", f"{figures.accepted}", ""),
        ("events processed", f"{figures.processed}", ""),
        ("events lost", f"{len(figures.lost_events)}", "must be 0" if drained else "must be 0 (NOT drained)"),
        ("automated messages expected", f"{total_expected}", ""),
        ("  sent", f"{figures.sent}", f"({figures.confirmed_by_status} confirmed by a status webhook)"),
        (
            "  unconfirmed (at-most-once)",
            f"{figures.unconfirmed}",
            f"reached the Cloud API {figures.unconfirmed_reached}, did not {figures.unconfirmed_not_reached}"
            + (f"; {unconfirmed_causes}" if unconfirmed_causes else ""),
        ),
        ("  cancelled with their order", f"{figures.cancelled_with_order}", ""),
        ("  lost", f"{len(figures.lost_messages)}", "must be 0"),
        ("automated messages sent twice", f"{figures.sent_twice}", "must be 0"),
        ("messages out of order", f"{len(figures.out_of_order)}", "must be 0 (of one order, by stage)"),
        ("state mismatches", f"{figures.mismatch_count}", "must be 0"),
        ("events refused (4xx)", f"{len(stats.refused)}", "must be 0"),
        (
            "time to drain",
            f"{drain_seconds:.1f} s" if drained else "NOT drained",
            f"bound {args.drain_timeout:g} s, from the last accepted event",
        ),
    ]
    print("\nFigures")
    for name, value, note in rows:
        print(f"  {name:<32} {value:>10}   {note}")

    problems: list[str] = []
    _detail(problems, "lost event", figures.lost_events)
    _detail(problems, "lost message", figures.lost_messages)
    _detail(problems, "sent twice", figures.sent_twice_detail)
    _detail(problems, "out of order", figures.out_of_order)
    _detail(problems, "refused", stats.refused)
    for name, found in figures.mismatches.items():
        _detail(problems, name, found)
    if stats.given_up:
        problems.append(f"{stats.given_up} deliveries never answered 2xx")
    if figures.sent_without_row:
        problems.append(f"{figures.sent_without_row} messages reached the Cloud API naming no outbox row")
    _detail(problems, "marked sent but never reached the Cloud API", figures.marked_sent_not_received)
    if not every_kind:
        missing = ", ".join(kind for kind, n in injected.items() if not n)
        problems.append(f"not every fault kind was injected: {missing}")
    if not drained:
        problems.append(f"did not drain within {args.drain_timeout:g} s")
    if figures.other_messages:
        other = ", ".join(f"{k} x{v}" for k, v in sorted(figures.other_messages.items()))
        print(f"\n  other outbox rows (not called for by the order rules; checked for duplicates): {other}")
    passed = not problems
    if args.json is not None:
        summary = {
            "passed": passed,
            "seed": args.seed,
            "events_accepted": figures.accepted,
            "events_processed": figures.processed,
            "events_lost": len(figures.lost_events),
            "messages_expected": total_expected,
            "messages_sent": figures.sent,
            "messages_unconfirmed": figures.unconfirmed,
            "messages_lost": len(figures.lost_messages),
            "messages_sent_twice": figures.sent_twice,
            "messages_out_of_order": len(figures.out_of_order),
            "state_mismatches": figures.mismatch_count,
            "refused": len(stats.refused),
            "drain_seconds": drain_seconds,
            "flow_seconds": flow[0],
            "faults": injected,
            "restarts": supervisor.restarts,
            "problems": problems,
        }
        args.json.write_text(json.dumps(summary, indent=2))
    verdict = "PASS" if passed else "FAIL"
    print(f"\nVerdict: {verdict} (seed {args.seed}; redis-server started {redis.starts} times)")
    for problem in problems:
        print(f"  {problem}")
    return passed


def _detail(problems: list[str], what: str, items: list[str]) -> None:
    for item in items[:10]:
        problems.append(f"{what}: {item}")
    if len(items) > 10:
        problems.append(f"{what}: ... {len(items) - 10} more")
