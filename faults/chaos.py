"""The faults, injected at random points of the event stream while it flows.

The plan is drawn from the seed before the run: every kind at least once, then kinds at random,
each at a random position between 5% and 85% of the events. Positions are counted in events
handed to the sender, not in seconds, so a short run sees every fault as a long one does.

Kinds:

- ``kill_worker``: SIGKILL a whole ``celery worker`` (main process and pool children); its
  unacknowledged tasks stay in Redis until ``visibility_timeout``, so only the sweepers bring
  its events back. The supervisor starts it again.
- ``kill_child``: SIGKILL one pool child; the main process reports ``WorkerLostError`` and the
  task is delivered again (``task_reject_on_worker_lost``).
- ``kill_beat``: SIGKILL beat: no sweeps and no follow-up ticks until the supervisor restarts it.
- ``redis_restart``: stop the private redis-server (SIGKILL or SIGTERM; nothing on disk) for 1
  to 3 s and start it again on the same port: every queued and unacknowledged task is gone.
- ``redis_blip_waits``: a Redis blip while sends wait for their rate-limit slots. The shared
  limiter's schedule is pushed 1 to 2 s ahead (the slots another sender of the number would take),
  so the sends under way claim their messages and wait; then Redis is SIGKILLed for 1 to 2 s and
  started again empty. The workers cancel the waiting sends
  (``worker_cancel_long_running_tasks_on_connection_loss``); none had dispatched its request, so
  the outbox sweeper sends each again, once.
- ``pg_terminate``: ``pg_terminate_backend`` on every PostgreSQL session of the API, the workers
  and beat.
- ``cloud_500``, ``cloud_429``: the fake Cloud API refuses the next 1 to 3 sends (500 without a
  Graph body; 429 with Graph code 130429 and ``Retry-After: 1``).
- ``cloud_timeout``: the fake accepts the next 1 or 2 sends but answers after the worker's read
  timeout; ``cloud_hangup``: it accepts the next one and closes the connection without answering.
  Both are unconfirmed sends, deliberately not resent.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from faults.cloud import RecordingCloudApi
from faults.environment import TIMINGS, terminate_backends
from faults.processes import Child, Redis

KINDS = (
    "kill_worker",
    "kill_child",
    "kill_beat",
    "redis_restart",
    "redis_blip_waits",
    "pg_terminate",
    "cloud_500",
    "cloud_429",
    "cloud_timeout",
    "cloud_hangup",
)
DESCRIPTIONS = {
    "kill_worker": "SIGKILL a whole celery worker",
    "kill_child": "SIGKILL one worker pool child",
    "kill_beat": "SIGKILL celery beat",
    "redis_restart": "redis-server stopped, restarted empty",
    "redis_blip_waits": "Redis blip during rate-limit waits",
    "pg_terminate": "pg_terminate_backend on all sessions",
    "cloud_500": "Cloud API answers 500",
    "cloud_429": "Cloud API answers 429 + Retry-After",
    "cloud_timeout": "Cloud API accepts, answers too late",
    "cloud_hangup": "Cloud API accepts, hangs up",
}


@dataclass(frozen=True)
class Injected:
    kind: str
    at: float  # time.time()
    position: int  # events handed out when it fired
    detail: str


def plan(events: int, count: int, rng: random.Random) -> list[tuple[int, str]]:
    """(position in the stream, kind), sorted by position: every kind once, then at random."""
    kinds = list(KINDS) + [rng.choice(KINDS) for _ in range(max(0, count - len(KINDS)))]
    rng.shuffle(kinds)
    positions = sorted(int(events * rng.uniform(0.05, 0.85)) for _ in kinds)
    return list(zip(positions, kinds, strict=True))


class Chaos:
    def __init__(
        self,
        schedule: list[tuple[int, str]],
        progress: Callable[[], int],
        workers: list[Child],
        beat: Child,
        redis: Redis,
        database: str,
        cloud: RecordingCloudApi,
        rng: random.Random,
        log: Callable[[str], None],
    ) -> None:
        self.schedule, self.progress = schedule, progress
        self.workers, self.beat, self.redis, self.database, self.cloud = workers, beat, redis, database, cloud
        self.rng, self.log = rng, log
        self.injected: list[Injected] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos", daemon=True)

    def start(self) -> Chaos:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop injecting (what is left of the plan is dropped) and leave Redis running."""
        self._stop.set()
        self._thread.join(timeout=60)
        self.redis.held.clear()

    def done(self) -> bool:
        return not self._thread.is_alive()

    def _run(self) -> None:
        for position, kind in self.schedule:
            while self.progress() < position:
                if self._stop.wait(0.05):
                    return
            try:
                detail = getattr(self, f"_{kind}")()
            except Exception as exc:  # a fault that could not be injected is reported, not fatal
                self.errors.append(f"{kind}: {type(exc).__name__}: {exc}")
                continue
            self.injected.append(Injected(kind, time.time(), self.progress(), detail))
            self.log(f"fault at event {self.progress()}: {kind} ({detail})")

    # --- the kinds --------------------------------------------------------------------------------

    def _kill_worker(self) -> str:
        alive = [w for w in self.workers if w.alive()]
        if not alive:
            return "no worker alive"
        worker = self.rng.choice(alive)
        worker.kill()
        return worker.name

    def _kill_child(self) -> str:
        deadline = time.monotonic() + 15  # a worker just restarted may not have forked its pool yet
        while not (candidates := [(w, pid) for w in self.workers for pid in w.pool_children()]):
            if time.monotonic() > deadline or self._stop.wait(0.2):
                raise RuntimeError("no pool child alive")
        worker, pid = self.rng.choice(candidates)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return f"{worker.name} child {pid} already gone"
        return f"{worker.name} child {pid}"

    def _kill_beat(self) -> str:
        self.beat.kill()
        return "beat"

    def _redis_restart(self) -> str:
        down = self.rng.uniform(1.0, 3.0)
        sig = self.rng.choice((signal.SIGKILL, signal.SIGTERM))
        self.redis.held.set()
        try:
            self.redis.stop(sig)
            self._stop.wait(down)
            self.redis.start()
        finally:
            self.redis.held.clear()
        return f"{signal.Signals(sig).name}, down {down:.1f} s"

    def _redis_blip_waits(self) -> str:
        # Imported here: settings are read at the first import, after the run's environment is set.
        from faults.ledger import sends_waiting_for_a_slot
        from integrations.whatsapp.rate_limit import RateLimiter

        rate = float(TIMINGS["OUTBOUND_RATE_PER_SECOND"])
        ahead = self.rng.uniform(1.0, 2.0)
        limiter = RateLimiter(rate, self.redis.url)  # the workers' key: one schedule for all
        for _ in range(int(rate * ahead)):
            limiter.reserve()
        deadline = time.monotonic() + ahead  # sends that start now wait up to ``ahead`` seconds
        waiting = 0
        while time.monotonic() < deadline and not (waiting := sends_waiting_for_a_slot()):
            if self._stop.wait(0.05):
                break
        down = self.rng.uniform(1.0, 2.0)
        self.redis.held.set()
        try:
            self.redis.stop(signal.SIGKILL)
            self._stop.wait(down)
            self.redis.start()
        finally:
            self.redis.held.clear()
        return f"schedule {ahead:.1f} s ahead, {waiting} sends waiting; down {down:.1f} s"

    def _pg_terminate(self) -> str:
        return f"{terminate_backends(self.database)} sessions"

    def _cloud_500(self) -> str:
        times = self.rng.randint(1, 3)
        self.cloud.fail_next(500, times=times)
        return f"next {times} sends"

    def _cloud_429(self) -> str:
        times = self.rng.randint(1, 3)
        self.cloud.fail_next(429, code=130429, times=times, retry_after=1)
        return f"next {times} sends"

    def _cloud_timeout(self) -> str:
        times = self.rng.randint(1, 2)
        self.cloud.delay_next(float(TIMINGS["OUTBOUND_TIMEOUT_SECONDS"]) + 1.5, times=times)
        return f"next {times} sends"

    def _cloud_hangup(self) -> str:
        self.cloud.drop_next()
        return "next send"
