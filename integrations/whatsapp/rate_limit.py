"""One send-rate limit for every worker process together, kept in Redis.

Meta caps a business number's throughput (80 messages/s by default, 20 for coexistence numbers;
over it, error 130429). Each worker process limiting itself would let N processes send N times
the rate, so the limit lives in Redis and every process reserves its slot there.

The algorithm is GCRA with a burst of one: the key holds the *theoretical arrival time* (TAT),
the earliest moment the next message may go, in microseconds. Reserving a slot takes
``max(TAT, now)`` and moves TAT one interval (1/rate) past it, so granted slots are at least one
interval apart and no sliding one-second window holds more than ``rate`` of them. The caller then
sleeps until its slot. All of this is one Lua script, atomic in Redis, with Redis's own ``TIME``
as the single clock, so processes on machines whose clocks disagree still share one schedule.

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

SAFETY_MARGIN = 0.03

# KEYS[1]: the TAT key. ARGV[1]: the interval between slots in microseconds (an integer);
# ARGV[2]: the longest wait the caller accepts, in microseconds (-1: any); ARGV[3]: the shortest
# wait it wants, in microseconds.
# Returns {wait, slot, granted}: microseconds to wait from Redis's "now", the slot's own time, and
# 1 if it was reserved (0: further than the caller's wait, nothing reserved).
_GCRA = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000000 + tonumber(now_parts[2])
local interval = tonumber(ARGV[1])
local max_wait = tonumber(ARGV[2])
local not_before = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or 0)
local slot = math.max(tat, now + not_before)
if max_wait >= 0 and slot - now > max_wait then
  return {slot - now, slot, 0}
end
local next_tat = slot + interval
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', math.ceil((next_tat - now) / 1000) + 1000)
return {slot - now, slot, 1}
"""


class Slot(NamedTuple):
    """A reserved moment to send: ``at`` on the limiter's clock (Unix seconds by Redis's clock, or
    ``time.monotonic()`` in-process), and ``wait``, the seconds from the reservation until then.
    ``granted`` is False when the slot was further than the caller's ``max_wait``: then it is
    only where the next free slot was, and nothing was reserved."""

    at: float
    wait: float
    granted: bool = True


class RateLimiter:
    """At most ``rate_per_second`` sends, spaced evenly, across every process sharing ``key``."""

    def __init__(
        self, rate_per_second: float, redis_url: str | None, key: str = "wacrm:outbound:rate"
    ) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self.rate_per_second = rate_per_second
        self.key = key
        # A little wider than 1/rate, and rounded up: the request leaves a moment after its slot
        # (a thread wakes, a connection is picked), and with slots exactly 1/rate apart that
        # jitter alone would put rate + 1 sends into some one-second window at the gateway.
        self.interval_us = math.ceil(1_000_000 / rate_per_second * (1 + SAFETY_MARGIN))
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
        limit_us = -1 if max_wait is None else max(0, int(max_wait * 1_000_000))
        after_us = max(0, int(not_before * 1_000_000))
        if self._redis is None:
            return self._reserve_local(limit_us, after_us)
        args = [self.interval_us, limit_us, after_us]
        wait_us, slot_us, granted = self._script(keys=[self.key], args=args)
        return Slot(at=int(slot_us) / 1_000_000, wait=int(wait_us) / 1_000_000, granted=bool(granted))

    def acquire(self) -> float:
        """Block until the caller may send; returns the seconds waited."""
        slot = self.reserve()
        if slot.wait > 0:
            time.sleep(slot.wait)
        return slot.wait

    def _reserve_local(self, limit_us: int, after_us: int) -> Slot:
        # Integer microseconds, as in the Lua script, so slots stay exactly one interval apart.
        with self._lock:
            now = time.monotonic_ns() // 1000
            at = max(self._local_tat, now + after_us)
            granted = limit_us < 0 or at - now <= limit_us
            if granted:
                self._local_tat = at + self.interval_us
        return Slot(at=at / 1_000_000, wait=(at - now) / 1_000_000, granted=granted)


def limiter(channel: int | None = None) -> RateLimiter:
    """The process's limiter of one channel (each number has its own throughput), built once from
    settings and shared in Redis when there is one. ``None`` is the settings channel, under the
    key the single-number installs have always used."""
    return _limiter(channel)


@functools.cache
def _limiter(channel: int | None) -> RateLimiter:
    key = "wacrm:outbound:rate" if channel is None else f"wacrm:outbound:rate:channel:{channel}"
    return RateLimiter(settings.outbound_rate_per_second, settings.rate_limit_redis_url, key=key)
