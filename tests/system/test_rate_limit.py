"""The shared send-rate limit: two OS processes on the tests' private Redis together stay within
the rate, and the in-process fallback spaces sends the same way.

Timing on a busy two-core machine is noisy, so the assertions are about counts: how many slots
were granted and how many fall in any one-second window, never how long a single call took. The
granted slots (on Redis's clock) must never exceed the rate in a window; the moments the callers
actually went may lag their slots by scheduling jitter, never precede them.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
import uuid

import pytest
import redis

from integrations.whatsapp.rate_limit import RateLimiter, Slot
from testkit.processes import PROJECT_ROOT, RedisServer, free_port

RATE = 50
DURATION = 1.5

# Run in each process: say "ready" once imported, read the start and end times, then acquire()
# until the end, recording each granted slot (by wrapping reserve, which acquire calls) and the
# moment acquire() let the caller go.
SENDER = """
import json, sys, time
from integrations.whatsapp.rate_limit import RateLimiter

url, key, rate = sys.argv[1], sys.argv[2], float(sys.argv[3])
limiter = RateLimiter(rate, url, key)
slots = []
reserve = limiter.reserve
def recording_reserve():
    slot = reserve()
    slots.append(slot.at)
    return slot
limiter.reserve = recording_reserve
print("ready", flush=True)
start, end = map(float, sys.stdin.readline().split())
sent = []
time.sleep(max(0.0, start - time.time()))
while time.time() < end:
    limiter.acquire()
    sent.append(time.time())
print(json.dumps({"slots": slots, "sent": sent}))
"""


def most_in_one_second(times: list[float]) -> int:
    """The largest number of ``times`` inside any half-open window [t, t + 1 s). Slots are whole
    microseconds; a microsecond of slack absorbs the rounding of their conversion to float seconds."""
    ordered = sorted(times)
    most, first = 0, 0
    for last, t in enumerate(ordered):
        while ordered[first] <= t - 1.0 + 1e-6:
            first += 1
        most = max(most, last - first + 1)
    return most


def test_two_processes_share_one_limit(redis_server: RedisServer):
    key = f"test:rate:{uuid.uuid4().hex}"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", SENDER, redis_server.url, key, str(RATE)],
            cwd=PROJECT_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    try:
        for process in processes:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
        start = time.time() + 0.2
        end = start + DURATION
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(f"{start!r} {end!r}\n")
            process.stdin.flush()
        for process in processes:
            out, _ = process.communicate(timeout=60)
            assert process.returncode == 0
            results.append(json.loads(out))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()

    slots = [at for result in results for at in result["slots"]]
    in_time = [at for at in slots if start - 0.5 <= at < end]
    expected = RATE * DURATION
    # One limit for both: not twice the rate (per-process limits would grant ~150 here), and
    # not far below it either (both processes keep asking all the time).
    assert 0.4 * expected <= len(in_time) <= expected + 1
    assert all(len(result["sent"]) >= 0.1 * expected for result in results), "both processes sent"
    # Slots are one interval apart on Redis's clock: never more than RATE in any second.
    assert most_in_one_second(slots) <= RATE
    # Nobody went before its slot (same machine, same wall clock as Redis's TIME). How late each
    # went depends on the machine's load, so that is measured in bench/outbound_rate.py instead.
    for result in results:
        assert all(t >= at - 0.002 for at, t in zip(result["slots"], result["sent"], strict=True))


def test_the_key_expires_once_idle(redis_server: RedisServer):
    key = f"test:rate:{uuid.uuid4().hex}"
    limiter = RateLimiter(10, redis_server.url, key)

    assert limiter.acquire() == 0
    waited = limiter.acquire()

    assert 0 < waited <= 0.1 + 0.01
    ttl_ms = redis.Redis.from_url(redis_server.url).pttl(key)
    assert 0 < ttl_ms <= 1000 + 200 + 50


def test_in_process_fallback_spaces_sends():
    rate, duration = 40, 1.0
    limiter = RateLimiter(rate, None)
    slots: list[Slot] = []
    lock = threading.Lock()
    end = time.monotonic() + duration

    def send() -> None:
        while time.monotonic() < end:
            slot = limiter.reserve()
            time.sleep(max(0.0, slot.wait))
            with lock:
                slots.append(slot)

    threads = [threading.Thread(target=send) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    ats = sorted(slot.at for slot in slots)
    assert all(b - a >= 1 / rate - 1e-6 for a, b in itertools.pairwise(ats))
    assert most_in_one_second(ats) <= rate
    assert 0.6 * rate * duration <= len([at for at in ats if at < end]) <= rate * duration + 1
    assert not limiter.shared


def test_acquire_waits_in_process():
    limiter = RateLimiter(20, None)

    waits = [limiter.acquire() for _ in range(3)]

    assert waits[0] == 0
    assert all(w > 0 for w in waits[1:])


def test_unreachable_redis_raises_instead_of_skipping_the_limit():
    limiter = RateLimiter(10, f"redis://127.0.0.1:{free_port()}/0")

    with pytest.raises(redis.ConnectionError):
        limiter.acquire()


@pytest.mark.parametrize("shared", [True, False])
def test_a_slot_further_than_the_callers_wait_is_refused_and_takes_nothing(redis_server: RedisServer, shared):
    url = redis_server.url if shared else None
    limiter = RateLimiter(2, url, f"test:rate:{uuid.uuid4().hex}")  # slots ~0.5 s apart

    first = limiter.reserve(max_wait=0.1)
    refused = limiter.reserve(max_wait=0.1)  # the next free slot is ~0.5 s away
    waiting = limiter.reserve(max_wait=5)

    assert first.granted and first.wait == 0
    assert not refused.granted and refused.wait > 0.1
    # The refusal reserved nothing: the next caller gets the very slot it was refused.
    assert waiting.granted and waiting.at == pytest.approx(refused.at, abs=0.01)


@pytest.mark.parametrize("shared", [True, False])
def test_a_slot_can_be_asked_for_no_sooner_than_a_lead(redis_server: RedisServer, shared):
    url = redis_server.url if shared else None
    limiter = RateLimiter(100, url, f"test:rate:{uuid.uuid4().hex}")

    ahead = limiter.reserve(not_before=0.2)
    after = limiter.reserve()

    assert ahead.granted and 0.19 <= ahead.wait <= 0.2
    assert after.at - ahead.at == pytest.approx(limiter.interval_us / 1_000_000, abs=1e-6)


def most_in_window(times: list[float], width: float) -> int:
    """The most ``times`` in any half-open window [t, t + width), a microsecond of slack as above."""
    ordered = sorted(times)
    most, first = 0, 0
    for last, t in enumerate(ordered):
        while ordered[first] <= t - width + 1e-6:
            first += 1
        most = max(most, last - first + 1)
    return most


@pytest.mark.parametrize("guard", [0.0, 0.03])
def test_batches_grant_exactly_the_rate_in_any_window(redis_server: RedisServer, guard):
    rate = 50
    limiter = RateLimiter(rate, redis_server.url, f"test:rate:{uuid.uuid4().hex}", guard=guard)
    slots: list[float] = []
    for size in itertools.islice(itertools.cycle([1, 7, 3, 12]), 40):  # 160 slots, ~3 s of them
        batch = limiter.reserve_many(size)
        assert batch.granted == size  # no cap: every slot asked for
        slots += [batch.at + i * batch.interval for i in range(batch.granted)]

    # The batches follow each other without a gap or an overlap: one even schedule.
    interval = limiter.interval_us / 1e6
    assert all(b - a == pytest.approx(interval, abs=2e-6) for a, b in itertools.pairwise(slots))
    # Exactly the rate in the widest window the guard allows, and never more in any second.
    assert most_in_window(slots, 1.0 + guard) == rate
    assert most_in_one_second(slots) <= rate
    assert most_in_one_second(slots) >= rate - (1 if guard else 0)


@pytest.mark.parametrize("shared", [True, False])
def test_a_batch_gets_the_slots_within_the_cap_and_the_next_wait(redis_server: RedisServer, shared):
    url = redis_server.url if shared else None
    limiter = RateLimiter(10, url, f"test:rate:{uuid.uuid4().hex}")  # slots 103 ms apart
    interval = limiter.interval_us / 1e6

    batch = limiter.reserve_many(5, max_wait=0.25)  # slots at 0, 0.103 and 0.206 s are within
    refused = limiter.reserve_many(2, max_wait=0.05)
    after = limiter.reserve_many(4)

    assert batch.granted == 3 and batch.wait == 0 and batch.interval == interval
    assert batch.waits() == pytest.approx([0, interval, 2 * interval])
    assert batch.due == pytest.approx(3 * interval, abs=1e-6)
    # Refused: nothing taken, and the wait says when the slot after the batch is due.
    assert refused.granted == 0
    assert refused.at == pytest.approx(batch.at + 3 * interval, abs=1e-6)
    assert 3 * interval - 0.05 < refused.wait <= 3 * interval
    assert after.granted == 4 and after.at == pytest.approx(refused.at, abs=1e-6)
