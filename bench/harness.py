"""What every benchmark runs on: its own PostgreSQL database and redis-server, the project's
processes (uvicorn, Celery workers), an HTTP load generator, drain timing and peak memory.

Each benchmark module (``bench/ingest.py``, ``bench/routing.py``, ...) measures one thing with
these and reports its figures through ``bench.report``. Nothing here asserts a time.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import redis
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from testkit.processes import PROJECT_ROOT, CeleryProcess, RedisServer, free_port, wait_for

ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


SECRET = "bench-app-secret"


WORKER_CONCURRENCY = 2


WARMUP_REQUESTS = 100


PRELOAD_BATCH = 500


POLL_SECONDS = 0.005


MEMORY_POLL_SECONDS = 0.5


DRAIN_TIMEOUT = 600.0


@dataclass(frozen=True)
class Run:
    """A batch of HTTP requests: how long it took, each one's latency, the failures."""

    requests: int
    seconds: float
    latencies: list[float]
    failures: int
    client_cpu: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: int) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[p - 1]


@dataclass(frozen=True)
class Memory:
    """RSS high-water marks (``VmHWM``), in KiB, of a worker's main process and pool processes."""

    main_kib: int
    pool_kib: tuple[int, ...]  # one per pool process seen, largest first

    @property
    def pool_peak_mib(self) -> float:
        return max(self.pool_kib, default=0) / 1024

    @property
    def main_mib(self) -> float:
        return self.main_kib / 1024

    def describe(self) -> str:
        pool = ", ".join(f"{kib / 1024:.1f}" for kib in self.pool_kib) or "none seen"
        return f"peak RSS: main process {self.main_mib:.1f} MiB, pool processes {pool} MiB"


@dataclass(frozen=True)
class Drain:
    """A worker emptying a pre-loaded queue."""

    count: int
    startup: float  # worker launched -> first fetch
    seconds: float  # first fetch -> all done
    memory: Memory | None = field(default=None, compare=False)
    concurrency: int = WORKER_CONCURRENCY

    @property
    def rate(self) -> float:
        return self.count / self.seconds


@contextmanager
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(server.workdir, ignore_errors=True)


@contextmanager
def bench_database() -> Iterator[str]:
    """A fresh PostgreSQL database; yields its URL, drops it (forcing connections off) at the end."""
    admin_url = make_url(ADMIN_URL)
    name = f"wacrm_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        _admin_sql(admin, f'CREATE DATABASE "{name}"')
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        _dispose_project_engine()
        _admin_sql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _admin_sql(admin: Engine, statement: str) -> None:
    with admin.connect() as connection:
        connection.execute(text(statement))


def _dispose_project_engine() -> None:
    db = sys.modules.get("models.db")
    if db is not None and db.get_engine.cache_info().currsize:
        db.get_engine().dispose()


def configure_environment(database_url: str, broker_url: str) -> None:
    """Point settings (read once, at first import) and every child process at the bench services."""
    if "settings" in sys.modules:
        raise RuntimeError("settings were imported before the bench environment was set")
    os.environ.update(
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker_url,
        WHATSAPP_APP_SECRET=SECRET,
        LOG_LEVEL="INFO",
    )
    for name in ("WHATSAPP_VERIFY_TOKEN", "PROMETHEUS_MULTIPROC_DIR"):
        os.environ.pop(name, None)


@contextmanager
def uvicorn_server(workers: int) -> Iterator[int]:
    """``uvicorn producers.app:app --workers N`` on a free port; yields the port."""
    port = free_port()
    log_path = Path(tempfile.gettempdir()) / f"wacrm-bench-uvicorn-{port}.log"
    command = [sys.executable, "-m", "uvicorn", "producers.app:app", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", str(workers)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        started = lambda: log_path.read_bytes().count(b"Application startup complete") >= workers  # noqa: E731
        wait_for(lambda: started() or process.poll() is not None, 60, "uvicorn start-up")
        # With one process uvicorn binds the port only after the application's start-up: wait for it.
        wait_for(lambda: _accepts(port) or process.poll() is not None, 60, "uvicorn to listen")
        if process.poll() is not None:
            raise RuntimeError(f"uvicorn exited:\n{log_path.read_text(errors='replace')[-3000:]}")
        yield port
    finally:
        _stop_group(process)
        log_path.unlink(missing_ok=True)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM our child's process group (it and its workers); SIGKILL it if it lingers."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def celery_worker(*extra: str, concurrency: int = WORKER_CONCURRENCY) -> Iterator[CeleryProcess]:
    """``celery -A workers worker -c 2`` (plus ``extra``), stopped and its log removed at the end."""
    name = f"bench-{uuid.uuid4().hex[:6]}"
    args = ["worker", "-n", f"{name}@%h", "-c", str(concurrency), "-l", "INFO"]
    worker = CeleryProcess([*args, "--without-mingle", "--without-gossip", *extra], name=name)
    try:
        yield worker
    finally:
        worker.stop()
        worker.log_path.unlink(missing_ok=True)


class PeakMemory:
    """Watches a process and its children (a prefork worker and its pool processes) for their RSS
    high-water mark, ``VmHWM`` from ``/proc/<pid>/status``: read every MEMORY_POLL_SECONDS in a
    thread (so a pool process replaced during the run keeps its peak) and once more on exit, which
    must come before the worker stops."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.main_kib = 0
        self.pool_kib: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def result(self) -> Memory:
        return Memory(self.main_kib, tuple(sorted(self.pool_kib.values(), reverse=True)))

    def sample(self) -> None:
        self.main_kib = max(self.main_kib, vm_hwm_kib(self.pid))
        for child in child_pids(self.pid):
            self.pool_kib[child] = max(self.pool_kib.get(child, 0), vm_hwm_kib(child))

    def _run(self) -> None:
        while not self._stop.wait(MEMORY_POLL_SECONDS):
            self.sample()


def vm_hwm_kib(pid: int) -> int:
    """A process's peak resident set size in KiB (``VmHWM``); 0 if it is gone."""
    return proc_status_kib(pid, "VmHWM")


def proc_status_kib(pid: int, field: str) -> int:
    """A memory figure of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``) in KiB; 0 if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def child_pids(pid: int) -> list[int]:
    """The children of ``pid`` (forked by any of its threads), from /proc."""
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return sorted(set(children))


class Connection:
    """One HTTP/1.1 keep-alive connection that sends prepared requests and reads whole answers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, request: bytes) -> int:
        """Write one request, read its response to the end; returns the status code."""
        self.writer.write(request)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])

    def close(self) -> None:
        self.writer.close()


class Recorder:
    """Collects statuses and latencies of one batch; ``finish()`` makes the ``Run``."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.failures = 0
        self.cpu = time.process_time()
        self.started = time.perf_counter()

    def record(self, status: int, latency: float) -> None:
        self.latencies.append(latency)
        self.failures += status != 200

    def finish(self) -> Run:
        seconds = time.perf_counter() - self.started
        cpu = time.process_time() - self.cpu
        return Run(len(self.latencies), seconds, self.latencies, self.failures, cpu)


async def closed_loop(port: int, requests: list[bytes], concurrency: int) -> Run:
    """``concurrency`` connections, each sending its next request as soon as the last is answered."""
    connections = [await Connection.open(port) for _ in range(concurrency)]
    pending = iter(requests)  # shared: each request goes to exactly one connection
    recorder = Recorder()

    async def client(connection: Connection) -> None:
        for request in pending:
            sent = time.perf_counter()
            status = await connection.send(request)
            recorder.record(status, time.perf_counter() - sent)

    try:
        await asyncio.gather(*(client(connection) for connection in connections))
    finally:
        for connection in connections:
            connection.close()
    return recorder.finish()


def raw_publish_rate(count: int) -> float:
    """No-op tasks published one by one with ``apply_async``, as the producer publishes."""
    from bench.noop import noop

    for _ in range(WARMUP_REQUESTS):  # the broker connection and its pool, outside the timing
        noop.apply_async()
    started = time.perf_counter()
    for _ in range(count):
        noop.apply_async()
    return count / (time.perf_counter() - started)


def drain(
    broker: redis.Redis,
    queue: str,
    done: Callable[[], bool],
    *worker_args: str,
    concurrency: int = WORKER_CONCURRENCY,
) -> Drain:
    """Start a worker on a pre-loaded ``queue``; time its first fetch and when ``done()`` holds;
    watch its processes' peak memory meanwhile."""
    total = int(broker.llen(queue))
    if not total:
        raise RuntimeError(f"queue {queue!r} is empty: nothing to drain")
    with (
        celery_worker(*worker_args, concurrency=concurrency) as worker,
        PeakMemory(worker.process.pid) as memory,
    ):
        launched = time.perf_counter()
        first = _poll(lambda: broker.llen(queue) < total, worker, "the worker's first fetch")
        _poll(lambda: _broker_drained(broker, queue), worker, f"queue {queue!r} to drain")
        finished = _poll(done, worker, "the work to be done")
    return Drain(total, first - launched, finished - first, memory.result(), concurrency)


def _broker_drained(broker: redis.Redis, queue: str) -> bool:
    # Acks are late: a message leaves kombu's "unacked" hash only once its task has returned.
    return broker.llen(queue) == 0 and broker.hlen("unacked") == 0


def _poll(predicate: Callable[[], bool], worker: CeleryProcess, what: str) -> float:
    deadline = time.perf_counter() + DRAIN_TIMEOUT
    while not predicate():
        if worker.process.poll() is not None:
            raise RuntimeError(f"the worker died waiting for {what}:\n{worker.output()}")
        if time.perf_counter() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(POLL_SECONDS)
    return time.perf_counter()


def phase(title: str) -> None:
    """A heading with the machine's load: other sessions share these 2 cores, and it shows."""
    print(f"\n{title}  [load average {os.getloadavg()[0]:.2f}]")


def store_webhooks(payloads: Iterable[dict[str, Any]]) -> None:
    """Cloud API webhooks' inbox events, stored and enqueued as the producer does, in batches."""
    from producers.inbox import store_and_enqueue
    from producers.whatsapp import Envelope, inbox_events

    batch: list[Any] = []
    for payload in payloads:
        batch += inbox_events(Envelope.model_validate(payload))
        if len(batch) >= PRELOAD_BATCH:
            store_and_enqueue(batch)
            batch = []
    if batch:
        store_and_enqueue(batch)


def inbox_counts() -> dict[str, int]:
    from models.db import session_scope

    with session_scope() as session:
        rows = session.execute(text("SELECT state, count(*) FROM inbox_events GROUP BY state"))
        return {state: count for state, count in rows}
