"""The system's processes for one run, a Redis that can be stopped and started again, and the
supervisor that restarts whatever dies (as compose's ``restart: unless-stopped`` does).

Every child runs in a process group of its own, so a SIGKILL reaches a Celery worker's main
process and its pool children together, and the clean-up never signals anything but our own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from faults.environment import APP_PREFIX
from testkit.processes import PROJECT_ROOT, RedisServer

START_TIMEOUT = 120.0
RESTART_DELAY = 1.0  # compose restarts a dead container at once; a second keeps logs readable


class Child:
    """One process of the system: its command, log file, readiness marker, and restarts."""

    def __init__(self, name: str, command: list[str], ready: bytes, env: dict[str, str], logs: Path) -> None:
        self.name, self.command, self.ready_marker, self.env, self.logs = name, command, ready, env, logs
        self.process: subprocess.Popen[bytes] | None = None
        self.log_paths: list[Path] = []
        self.starts = 0
        self.exits: list[int] = []  # return codes of the incarnations that died

    @property
    def log_path(self) -> Path:
        return self.log_paths[-1]

    def start(self) -> Child:
        self.starts += 1
        path = self.logs / f"{self.name}.{self.starts}.log"
        self.log_paths.append(path)
        with path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=PROJECT_ROOT,
                env={**os.environ, "PGAPPNAME": f"{APP_PREFIX}{self.name}", **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def is_ready(self) -> bool:
        return self.ready_marker in self.log_path.read_bytes()

    def wait_ready(self, timeout: float = START_TIMEOUT) -> Child:
        deadline = time.monotonic() + timeout
        while not self.is_ready():
            if not self.alive():
                raise RuntimeError(f"{self.name} exited while starting:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name} did not start in {timeout:.0f} s:\n{self.tail()}")
            time.sleep(0.1)
        return self

    def pool_children(self) -> list[int]:
        if not self.alive():
            return []
        assert self.process is not None
        listing = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True)
        return [int(pid) for pid in listing.stdout.split()]

    def kill(self) -> None:
        """SIGKILL the whole process group: the main process and every pool child."""
        if self.alive():
            assert self.process is not None
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 20) -> None:
        if self.alive():
            assert self.process is not None
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
            except ProcessLookupError:
                pass
        # Pool children orphaned by a SIGKILL of their parent only: never anyone else's.
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_paths else ""


def api(port: int, logs: Path) -> Child:
    command = [sys.executable, "-m", "uvicorn", "producers.app:app", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", "1", "--no-access-log"]
    return Child("api", command, b"Application startup complete", {}, logs)


def worker(number: int, concurrency: int, logs: Path) -> Child:
    name = f"worker-{number}"
    command = [sys.executable, "-m", "celery", "-A", "workers", "worker", "-n", f"faults-{name}@%h"]
    command += ["-c", str(concurrency), "-l", "INFO", "--without-mingle", "--without-gossip"]
    return Child(name, command, b"ready.", {}, logs)


def beat(logs: Path) -> Child:
    schedule = logs / "celerybeat-schedule"
    command = [sys.executable, "-m", "celery", "-A", "workers", "beat", "-l", "INFO", "-s", str(schedule)]
    return Child("beat", command, b"beat: Starting", {}, logs)


class Redis(RedisServer):
    """The tests' private redis-server (nothing on disk: stopping it loses every queued task, as a
    crashed broker without persistence would), stopped by the chaos and restarted by the
    supervisor, counting its starts."""

    def __init__(self) -> None:
        super().__init__()
        self.held = threading.Event()  # set while the chaos thread keeps it down on purpose
        self.starts = 0

    def start(self) -> Redis:
        super().start()
        self.starts += 1
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(sig)
            self.process.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class Supervisor:
    """Restarts a dead child after RESTART_DELAY, and Redis when the chaos is not holding it
    down. Counts what it restarted."""

    children: list[Child]
    redis: Redis
    restarts: dict[str, int] = field(default_factory=dict)
    on_event: Callable[[str], None] = lambda _: None

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)
        self._dead_since: dict[str, float] = {}

    def start(self) -> Supervisor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            now = time.monotonic()
            if not self.redis.alive() and not self.redis.held.is_set():
                self.redis.start()
                self._count("redis")
            for child in self.children:
                if child.alive():
                    continue
                since = self._dead_since.setdefault(child.name, now)
                if now - since < RESTART_DELAY:
                    continue
                del self._dead_since[child.name]
                assert child.process is not None
                child.exits.append(child.process.returncode)
                child.start()
                self._count(child.name)

    def _count(self, name: str) -> None:
        kind = "worker" if name.startswith("worker") else name
        self.restarts[kind] = self.restarts.get(kind, 0) + 1
        self.on_event(f"supervisor restarted {name}")
