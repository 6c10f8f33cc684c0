"""Shared parts of the outbound benchmarks (``bench.followups``, ``bench.outbound_rate``,
``bench.media_send``).

The environment that points every process at the fake Cloud API, Celery worker and beat
processes of our own (stopped and their logs removed on any exit), bulk rows written with one
SQL statement each, waiting with a dead-process check, and the figures computed from the fake's
clock. The fresh database, the private redis-server and the base environment come from
``bench.ingest``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.harness import configure_environment
from testkit.fakes.cloud_api import FakeCloudApi
from testkit.processes import CeleryProcess

# Settings that would send the bench somewhere else (the shared Redis, another messages file).
_UNSET = (
    "WHATSAPP_GATEWAY",
    "WHATSAPP_API_BASE",
    "WHATSAPP_ACCESS_TOKEN",
    "WHATSAPP_PHONE_NUMBER_ID",
    "OUTBOUND_RATE_REDIS_URL",
    "ORDER_MESSAGES_FILE",
    "WAHA_URL",
    "WAHA_API_KEY",
    "WAHA_SESSION",
    "ODOO_URL",
    "ADMIN_TOKEN",
    "ORDER_WEBHOOK_SECRET",
)
START_TIMEOUT = 120.0
POLL_SECONDS = 0.25
STALL_SECONDS = 60.0


def cloud_env(fake: FakeCloudApi) -> dict[str, str]:
    """Settings that send through the real Cloud API client to ``fake``."""
    return {
        "WHATSAPP_GATEWAY": "cloud",
        "WHATSAPP_API_BASE": fake.base_url,
        "WHATSAPP_ACCESS_TOKEN": fake.access_token,
        "WHATSAPP_PHONE_NUMBER_ID": fake.phone_number_id,
    }


def configure_outbound_environment(database_url: str, broker_url: str) -> None:
    """``bench.ingest``'s environment, before any project import, without settings that would
    reach outside the bench. The gateway settings go to each worker (``cloud_env``)."""
    configure_environment(database_url, broker_url)
    for name in _UNSET:
        os.environ.pop(name, None)


# --- processes --------------------------------------------------------------------------------


@contextmanager
def celery_workers(
    count: int, concurrency: int, queues: str, env: dict[str, str]
) -> Iterator[list[CeleryProcess]]:
    """``count`` times ``celery -A workers worker -c concurrency -Q queues`` (prefork), ready."""
    processes: list[CeleryProcess] = []
    try:
        for _ in range(count):
            name = f"bench-{uuid.uuid4().hex[:6]}"
            args = ["worker", "-n", f"{name}@%h", "-c", str(concurrency), "-Q", queues, "-l", "INFO"]
            processes.append(CeleryProcess([*args, "--without-mingle", "--without-gossip"], env, name))
        for process in processes:
            process.wait_ready(START_TIMEOUT)
        yield processes
    finally:
        for process in processes:
            process.stop()
            process.log_path.unlink(missing_ok=True)


@contextmanager
def celery_beat(env: dict[str, str]) -> Iterator[CeleryProcess]:
    """``celery -A workers beat`` with a schedule file of its own, started."""
    workdir = Path(tempfile.mkdtemp(prefix="wacrm-bench-beat-"))
    name = f"bench-beat-{uuid.uuid4().hex[:6]}"
    beat = CeleryProcess(["beat", "-l", "INFO", "-s", str(workdir / "schedule")], env, name)
    try:
        wait_until(lambda: b"Starting" in beat.log_path.read_bytes(), [beat], START_TIMEOUT, "beat start-up")
        yield beat
    finally:
        beat.stop()
        beat.log_path.unlink(missing_ok=True)
        shutil.rmtree(workdir, ignore_errors=True)


def wait_until(
    predicate: Callable[[], Any],
    processes: Sequence[CeleryProcess],
    timeout: float,
    what: str,
    describe: Callable[[], str] = lambda: "",
    progress: Callable[[], Any] | None = None,
) -> float:
    """Poll ``predicate`` until it holds; returns ``time.time()`` then. Fails if one of
    ``processes`` exits, if ``progress()`` (when given) stays the same for STALL_SECONDS (a task
    failing for good leaves its row unfinished for ever; the workers' last log lines say why),
    or after ``timeout`` seconds; ``describe()`` goes into the message."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while not predicate():
        for process in processes:
            if process.process.poll() is not None:
                raise RuntimeError(f"{process.name} exited waiting for {what}:\n{process.output()}")
        if progress is not None and (current := progress()) != last:
            last, since = current, time.monotonic()
        if time.monotonic() - since > STALL_SECONDS:
            logs = "\n".join(f"--- {p.name}:\n{p.output()[-2000:]}" for p in processes)
            raise RuntimeError(
                f"no progress for {STALL_SECONDS:.0f} s waiting for {what} {describe()}\n{logs}"
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} {describe()}")
        time.sleep(POLL_SECONDS)
    return time.time()


# --- rows ---------------------------------------------------------------------------------------


def execute(sql: str, **params: Any) -> list[Any]:
    """One statement in its own transaction on the project's engine; the rows it returned."""
    from sqlalchemy import text

    from models.db import get_engine

    with get_engine().begin() as connection:
        result = connection.execute(text(sql), params)
        return list(result) if result.returns_rows else []


def vacuum_analyze(*tables: str) -> None:
    """VACUUM ANALYZE ``tables`` (every table when none is named), outside a transaction: fresh
    statistics, and no autovacuum of the rows just written running during a measurement."""
    from sqlalchemy import text

    from models.db import get_engine

    statements = [f'VACUUM ANALYZE "{table}"' for table in tables] or ["VACUUM ANALYZE"]
    with get_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for statement in statements:
            connection.execute(text(statement))


def insert_contacts(count: int, *, window_open: bool) -> int:
    """``count`` contacts with distinct Indonesian mobile numbers (+62813…); the first id (ids are
    consecutive). ``window_open``: they wrote just now, so free text may go; else templates."""
    rows = execute(
        """
        INSERT INTO contacts (name, phone_e164, lead_source, last_inbound_at, created_at)
        SELECT 'Pelanggan ' || g, '+62813' || lpad(g::text, 8, '0'), 'organic',
               CASE WHEN :window_open THEN now() END, now()
        FROM generate_series(1, :count) AS g
        ORDER BY g
        RETURNING id
        """,
        count=count,
        window_open=window_open,
    )
    ids = sorted(row.id for row in rows)
    if ids[-1] - ids[0] != count - 1:
        raise RuntimeError("contact ids are not consecutive")
    return ids[0]


def outbox_states() -> dict[str, int]:
    rows = execute("SELECT state, count(*) AS n FROM outbound_messages GROUP BY state ORDER BY state")
    return {row.state: row.n for row in rows}


def unfinished_outbox() -> int:
    return execute("SELECT count(*) AS n FROM outbound_messages WHERE state IN ('queued', 'sending')")[0].n


# --- CPU -------------------------------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU seconds used between ``start()`` and ``stop()`` by the worker processes (each main
    process and its pool children), by PostgreSQL's backends serving the bench database, and by
    this process (the fake Cloud API's threads and the polling)."""

    def __init__(self, processes: Sequence[CeleryProcess]) -> None:
        self.processes = processes
        self._start: dict[str, dict[int, float]] = {}
        self.seconds: dict[str, float] = {}

    def start(self) -> CpuMeter:
        self._start = self._sample()
        return self

    def stop(self) -> dict[str, float]:
        end = self._sample()
        self.seconds = {
            group: sum(cpu - self._start[group].get(pid, 0.0) for pid, cpu in pids.items())
            for group, pids in end.items()
        }
        return self.seconds

    def _sample(self) -> dict[str, dict[int, float]]:
        workers = [pid for p in self.processes for pid in (p.process.pid, *p.child_pids())]
        backends = [row.pid for row in execute(_BACKENDS)]
        return {
            "workers": {pid: _cpu_seconds(pid) for pid in workers},
            "postgres": {pid: _cpu_seconds(pid) for pid in backends},
            "bench": {os.getpid(): time.process_time()},
        }


_BACKENDS = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of one process, from /proc (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


# --- figures ------------------------------------------------------------------------------------


def arrival_times(fake: FakeCloudApi, path_suffix: str = "") -> list[float]:
    """When each request (whose path ends with ``path_suffix``: ``/messages`` leaves out media
    uploads) reached the fake (its clock, ``time.time()``), sorted."""
    with fake._lock:  # the server threads append while we read
        return sorted(r["received_at"] for r in fake.requests if r["path"].endswith(path_suffix))


def steady_rate(times: Sequence[float]) -> float:
    """Requests per second from the first to the last one: ``(n - 1) / (last - first)``."""
    if len(times) < 2 or times[-1] <= times[0]:
        return float("nan")
    return (len(times) - 1) / (times[-1] - times[0])


def max_in_window(times: Sequence[float], width: float = 1.0) -> int:
    """The most requests in any half-open window ``[t, t + width)``; ``times`` sorted.

    The busiest window can always be taken to start at a request, so two pointers over the
    sorted times find it exactly: for each request, how many follow it within ``width``."""
    best, end = 0, 0
    for start, first in enumerate(times):
        end = max(end, start)
        while end < len(times) and times[end] - first < width:
            end += 1
        best = max(best, end - start)
    return best


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"
