"""One send-rate limit for every worker process together, kept in Redis.

Meta caps a business number's throughput (80 messages/s by default, 20 for coexistence numbers;
over it, error 130429). Each worker process limiting itself would let N processes send N times
the rate, so the limit lives in Redis and every process reserves its slot there.

The algorithm is GCRA with a burst of one: the key holds the *theoretical arrival time* (TAT),
the earliest moment the next message may go, in microseconds. Reserving a slot takes
``max(TAT, now)`` and moves TAT one interval past it, so granted slots are at least one interval
apart. The interval is ``(1 + guard) / rate`` (OUTBOUND_RATE_GUARD_SECONDS): any ``rate + 1``
slots then span ``1 + guard`` seconds, so no sliding one-second window holds more than ``rate``
of them even when each send reaches the gateway up to ``guard`` seconds after its slot. The
caller then sleeps until its slot. All of this is one Lua script, atomic in Redis, with Redis's
own ``TIME`` as the single clock, so processes on machines whose clocks disagree still share one
schedule; nothing is decided by a process's own clock except how long to sleep.

A batch takes up to N consecutive slots in the same round trip (``reserve_many``): the script
grants as many as fall within the caller's cap and answers with the first one's wait, the
interval, and when the slot after the batch is due.

A caller may cap its wait (``reserve(max_wait=...)``): a slot further away than that is not
granted and TAT does not move, so a refusal costs no one else a slot; the caller comes back
later (the outbound worker gives its message back to the queue with a countdown). A caller may
also ask for a slot no sooner than ``not_before`` seconds from now, for work it must do before
it sends (the outbound worker commits a marker): an idle limiter's moments in between are not
given to anyone else, which costs nothing, as GCRA with a burst of one banks no unused slots.

Each channel (each WhatsApp number) has its own limit and key: Meta caps each number apart.

Without Redis (the embedded mode) the same algorithm runs in-process under a lock on
``time.monotonic``; the limit is then per process, which is what a single embedded worker needs.

If Redis cannot be reached the error propagates: the outbound worker treats it as transient and
tries later. Sending without the limit would risk the whole number's throughput.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from typing import NamedTuple

import redis

from settings import settings

# KEYS[1]: the TAT key. ARGV[1]: the interval between slots in microseconds (an integer);
# ARGV[2]: how many slots the caller wants (a batch); ARGV[3]: the longest wait it accepts for a
# slot, in microseconds (-1: any); ARGV[4]: the shortest wait it wants, in microseconds.
# Grants the first ``granted`` of the wanted slots that fall within the longest wait, one interval
# apart, the first at max(TAT, now + shortest wait), and moves TAT past the last one granted.
# Returns {granted, wait, first, due}: how many were granted (0: none within the wait, nothing
# reserved), microseconds from Redis's "now" to the first slot (if none was granted: to the next
# free one), that slot's own time, and microseconds from now until the slot after the batch.
_GCRA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local wanted = tonumber(ARGV[2])
local max_wait = tonumber(ARGV[3])
local not_before = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
local first = math.max(tat, now + not_before)
local granted = wanted
if max_wait >= 0 then
  granted = math.min(wanted, math.max(0, math.floor((now + max_wait - first) / interval) + 1))
end
if granted == 0 then
  return {0, first - now, first, first - now}
end
local next_tat = first + granted * interval
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1000)
return {granted, first - now, first, next_tat - now}
"""


# Spacing beyond 1/rate, in seconds per rate's worth of slots (OUTBOUND_RATE_GUARD_SECONDS).
DEFAULT_GUARD_SECONDS = 0.03


class Batch(NamedTuple):
    """Slots for a batch: ``granted`` of them, one ``interval`` apart (seconds), the first ``wait``
    seconds after the reservation (at ``at`` on the limiter's clock); ``due``: seconds from the
    reservation until the slot after the last one granted (when no slot was granted, ``wait`` and
    ``due`` both say when the next free slot is)."""

    granted: int
    wait: float
    at: float
    interval: float
    due: float

    def waits(self) -> list[float]:
        """Each granted slot's wait, in order."""
        return [self.wait + i * self.interval for i in range(self.granted)]


class Slot(NamedTuple):
    """A reserved moment to send: ``at`` on the limiter's clock (Unix seconds by Redis's clock, or
    ``time.monotonic()`` in-process), and ``wait``, the seconds from the reservation until then.
    ``granted`` is False when the slot was further than the caller's ``max_wait``: then it is
    only where the next free slot was, and nothing was reserved."""

    at: float
    wait: float
    granted: bool = True


class RateLimiter:
    """At most ``rate_per_second`` sends, spaced evenly, across every process sharing ``key``.

    Slots are ``(1 + guard) / rate`` seconds apart: any ``rate + 1`` of them span at least
    ``1 + guard`` seconds, so a send that leaves up to ``guard`` seconds after its slot (a thread
    waking, a request being written) still keeps every one-second window at the receiver within
    ``rate``."""

    def __init__(
        self,
        rate_per_second: float,
        redis_url: str | None,
        key: str = "wacrm:outbound:rate",
        guard: float = DEFAULT_GUARD_SECONDS,
    ) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        if not 0 <= guard < 1:
            raise ValueError("guard must be in [0, 1) seconds")
        self.rate_per_second = rate_per_second
        self.key = key
        self.guard = guard
        # Rounded up, so that rounding never puts the slots closer than (1 + guard) / rate.
        self.interval_us = math.ceil(1_000_000 * (1 + guard) / rate_per_second)
        self.shared = redis_url is not None
        self._lock = threading.Lock()
        self._local_tat = 0  # microseconds on time.monotonic_ns()
        if redis_url is not None:
            # Timeouts, so an unreachable Redis fails the send (to be retried) instead of hanging it.
            self._redis: redis.Redis | None = redis.Redis.from_url(
                redis_url, socket_connect_timeout=5, socket_timeout=5
            )
            self._script = self._redis.register_script(_GCRA)
        else:
            self._redis = None

    def reserve(self, max_wait: float | None = None, not_before: float = 0.0) -> Slot:
        """Take the next free slot, at least ``not_before`` seconds away, without waiting for it;
        with ``max_wait`` (seconds), only if it is at most that far away."""
        batch = self.reserve_many(1, max_wait=max_wait, not_before=not_before)
        return Slot(at=batch.at, wait=batch.wait, granted=batch.granted == 1)

    def reserve_many(self, count: int, max_wait: float | None = None, not_before: float = 0.0) -> Batch:
        """Up to ``count`` consecutive slots in one round trip: as many as fall within ``max_wait``
        seconds (all of them without it), the first at least ``not_before`` seconds away."""
        if count < 1:
            raise ValueError("count must be at least 1")
        limit_us = -1 if max_wait is None else max(0, int(max_wait * 1_000_000))
        after_us = max(0, int(not_before * 1_000_000))
        if self._redis is None:
            granted, wait_us, at_us, due_us = self._reserve_local(count, limit_us, after_us)
        else:
            args = [self.interval_us, count, limit_us, after_us]
            granted, wait_us, at_us, due_us = self._script(keys=[self.key], args=args)
        return Batch(
            granted=int(granted),
            wait=int(wait_us) / 1_000_000,
            at=int(at_us) / 1_000_000,
            interval=self.interval_us / 1_000_000,
            due=int(due_us) / 1_000_000,
        )

    def acquire(self) -> float:
        """Block until the caller may send; returns the seconds waited."""
        slot = self.reserve()
        if slot.wait > 0:
            time.sleep(slot.wait)
        return slot.wait

    def _reserve_local(self, count: int, limit_us: int, after_us: int) -> tuple[int, int, int, int]:
        # The Lua script's arithmetic, in integer microseconds, under a lock.
        with self._lock:
            now = time.monotonic_ns() // 1000
            first = max(self._local_tat, now + after_us)
            granted = count
            if limit_us >= 0:
                granted = min(count, max(0, (now + limit_us - first) // self.interval_us + 1))
            if granted == 0:
                return 0, first - now, first, first - now
            self._local_tat = first + granted * self.interval_us
            return granted, first - now, first, self._local_tat - now


def limiter(channel: int | None = None) -> RateLimiter:
    """The process's limiter of one channel (each number has its own throughput), built once from
    settings and shared in Redis when there is one. ``None`` is the settings channel, under the
    key the single-number installs have always used."""
    return _limiter(channel)


@functools.cache
def _limiter(channel: int | None) -> RateLimiter:
    key = "wacrm:outbound:rate" if channel is None else f"wacrm:outbound:rate:channel:{channel}"
    return RateLimiter(
        settings.outbound_rate_per_second,
        settings.rate_limit_redis_url,
        key=key,
        guard=settings.outbound_rate_guard_seconds,
    )
