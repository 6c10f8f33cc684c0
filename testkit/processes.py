"""Real parts for the tests: a private redis-server, Celery worker and beat processes, waiting."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
# Not imported from settings: importing settings would freeze the environment before conftest sets it.
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], T], timeout: float = 60, what: str = "condition") -> T:
    """Poll until ``predicate()`` is truthy; fail the test with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@contextmanager
def api_server(name: str, env: dict[str, str]) -> Iterator[str]:
    """``uvicorn producers.app:app`` on a free port with ``env`` over the tests' environment;
    yields its base URL once it answers /healthz."""
    import httpx  # a test dependency, not needed by the other helpers here

    port = free_port()
    log = Path(tempfile.gettempdir()) / f"wacrm-{name}-{port}.log"
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "producers.app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env={**os.environ, **env}, stdout=output, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(answers, 30, "uvicorn serving the app")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


class RedisServer:
    """A redis-server of our own on a free port, keeping nothing on disk, so it can be stopped."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.workdir = Path(tempfile.mkdtemp(prefix="wacrm-redis-"))

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if not binary:
            raise RuntimeError("redis-server is not installed (Debian package redis-server)")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # out of the caller's process group: Ctrl-C there leaves it to us
        )
        wait_for(self._answers, 10, f"redis-server on port {self.port}")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False


class CeleryProcess:
    """``celery -A workers worker|beat`` as a child process, with the tests' environment."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, name: str | None = None) -> None:
        self.name = name or f"test-{uuid.uuid4().hex[:6]}"
        self.log_path = Path(tempfile.gettempdir()) / f"wacrm-{self.name}.log"
        self._args, self._env = args, env
        self._started_at = 0  # where this run's output begins in the log (restart appends)
        self._log = self.log_path.open("wb")
        self.process = self._spawn()

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers", *self._args],
            cwd=PROJECT_ROOT,
            env={**os.environ, **(self._env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def restart(self) -> CeleryProcess:
        """Start the same process again after ``stop``, logging on into the same file."""
        self._log = self.log_path.open("ab")
        self._started_at = self.log_path.stat().st_size
        self.process = self._spawn()
        return self

    @classmethod
    def worker(cls, concurrency: int = 2, queues: str | None = None, **env: str) -> CeleryProcess:
        name = f"test-{uuid.uuid4().hex[:6]}"
        args = ["worker", "-n", f"{name}@%h", "-c", str(concurrency), "-l", "INFO", "--without-mingle"]
        if queues:
            args += ["-Q", queues]
        return cls(args, env, name)

    @classmethod
    def beat(cls, **env: str) -> CeleryProcess:
        schedule = Path(tempfile.mkdtemp(prefix="wacrm-beat-")) / "schedule"
        return cls(["beat", "-l", "INFO", "-s", str(schedule)], env)

    def wait_ready(self, timeout: float = 60) -> CeleryProcess:
        since = getattr(self, "_started_at", 0)
        wait_for(
            lambda: b"ready." in self.log_path.read_bytes()[since:] or self._died(),
            timeout,
            f"{self.name} ready",
        )
        assert self.process.poll() is None, f"{self.name} died:\n{self.output()}"
        return self

    def child_pids(self) -> list[int]:
        listing = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True)
        return [int(pid) for pid in listing.stdout.split()]

    def kill(self) -> None:
        """SIGKILL the whole process group: the main process and every pool child, no goodbyes."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, 9)
            self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def _died(self) -> bool:
        return self.process.poll() is not None
