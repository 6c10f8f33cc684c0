"""Channels benchmark: the ingest benchmark with three channels against one, in the same run.

With one channel (the settings channel, nothing stored: the webhook is checked against
``WHATSAPP_APP_SECRET`` as before channels) and with three stored Cloud API channels (each
webhook addressed by its ``metadata.phone_number_id`` to one of them, in turn, and signed with
that channel's app secret, so the producer looks up the channel and verifies per channel):

(a) ingest: signed one-message webhooks POSTed over HTTP to ``uvicorn producers.app:app
    --workers 1``, no worker running; the best closed-loop rate over a few client concurrencies.
(b) end-to-end: inbox events pre-loaded as the producer stores them (with their channel), then
    ``celery -A workers worker -c 2`` on every queue, timed until no inbox row is ``pending``.

Each phase runs for one channel, then three, then (full size) both again; the better of each is
kept, so that the machine's load drifting during the run weighs on both alike. The goal is no
loss of rate: three channels / one channel >= 0.9.

    .venv/bin/python -m bench.channels            # full size, a few minutes
    .venv/bin/python -m bench.channels --quick    # a smoke run
"""

from __future__ import annotations

import asyncio
import itertools
import os
from contextlib import ExitStack, closing
from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy import text

from bench.harness import (
    SECRET,
    WARMUP_REQUESTS,
    Drain,
    bench_database,
    closed_loop,
    configure_environment,
    drain,
    inbox_counts,
    phase,
    private_redis,
    uvicorn_server,
)
from bench.report import Figure, bench_args, bench_main
from testkit import samples
from testkit.fakes.cloud_api import FakeCloudApi

DESCRIPTION = "Channels benchmark: ingest with three channels against one, in the same run."
WEBHOOK_PATH = "/webhooks/whatsapp"
INGEST_QUEUE = "ingest"
TARGET_RATIO = 0.9
CHANNELS = [
    {
        "name": f"bench-{n}",
        "kind": "cloud",
        "phone_number_id": f"99000000000{n}",
        "access_token": f"bench-token-{n}",
        "app_secret": f"bench-app-secret-{n}",
        "team": f"team-{n}",
    }
    for n in (1, 2, 3)
]

_wa_ids = itertools.count(6281300000000)


@dataclass(frozen=True)
class Sizes:
    requests: int
    events: int
    concurrency: tuple[int, ...]
    rounds: int


FULL = Sizes(requests=3000, events=2000, concurrency=(8, 32), rounds=2)
QUICK = Sizes(requests=400, events=200, concurrency=(16,), rounds=1)


def payload(channel: dict[str, Any] | None) -> tuple[dict[str, Any], str]:
    """A new customer's one text message, addressed to ``channel`` (None: the settings channel),
    and the secret it is signed with."""
    wa_id = str(next(_wa_ids))
    body = samples.inbound_text(wa_id, f"Pelanggan {wa_id[-4:]}", "Halo, apakah stoknya masih ada?")
    if channel is None:
        return body, SECRET
    body["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = channel["phone_number_id"]
    return body, channel["app_secret"]


def addressed(count: int, channels: int) -> list[tuple[dict[str, Any], str]]:
    """``count`` payloads, over the stored channels in turn (or the settings channel)."""
    if channels == 1:
        return [payload(None) for _ in range(count)]
    return [payload(CHANNELS[i % len(CHANNELS)]) for i in range(count)]


def http_requests(count: int, port: int, channels: int) -> list[bytes]:
    requests = []
    for body, secret in addressed(count, channels):
        data, headers = samples.encode(body, secret)
        lines = [f"POST {WEBHOOK_PATH} HTTP/1.1", f"Host: 127.0.0.1:{port}", f"Content-Length: {len(data)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        requests.append(("\r\n".join(lines) + "\r\n\r\n").encode() + data)
    return requests


def use_channels(count: int, broker: redis.Redis) -> None:
    """Empty every table and the broker; store the three channels when ``count`` is 3."""
    from models import Base
    from models.db import session_scope
    from pipeline import channels

    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    with session_scope() as session:
        session.execute(text(f"TRUNCATE {tables} CASCADE"))
        if count == 3:
            for spec in CHANNELS:
                channels.create(session, dict(spec))
    broker.flushdb()


def ingest_rate(sizes: Sizes, channels: int) -> float:
    rates = []
    with uvicorn_server(1) as port:
        asyncio.run(closed_loop(port, http_requests(WARMUP_REQUESTS, port, channels), 8))
        for concurrency in sizes.concurrency:
            run = asyncio.run(closed_loop(port, http_requests(sizes.requests, port, channels), concurrency))
            rates.append(run.rate)
            print(
                f"(a) {channels} channel(s), {concurrency:2d} clients: {run.rate:6.0f} req/s  "
                f"p50 {run.percentile(50) * 1000:6.1f} ms  p99 {run.percentile(99) * 1000:6.1f} ms  "
                f"failures {run.failures}"
            )
            if run.failures:
                raise RuntimeError(f"{run.failures} webhooks were refused with {channels} channel(s)")
    return max(rates)


def preload(count: int, channels: int) -> None:
    """Inbox events as the producer stores them, with the channel routing it does."""
    from producers import channels as routing
    from producers.inbox import store_and_enqueue
    from producers.whatsapp import Envelope, inbox_events
    from settings import settings

    known = asyncio.run(routing.known())
    events: list[Any] = []
    for body, _ in addressed(count, channels):
        route_of = None
        if channels == 3:
            route_of = lambda pnid: routing.cloud_route(known, pnid, settings)  # noqa: E731
        events += inbox_events(Envelope.model_validate(body), route_of)
        if len(events) >= 500:
            store_and_enqueue(events)
            events = []
    if events:
        store_and_enqueue(events)


def end_to_end(sizes: Sizes, broker: redis.Redis, channels: int) -> Drain:
    use_channels(channels, broker)
    preload(sizes.events, channels)
    result = drain(broker, INGEST_QUEUE, lambda: inbox_counts().get("pending", 0) == 0, concurrency=2)
    print(
        f"(b) {channels} channel(s): {result.rate:6.0f} events/s  ({result.count} events, worker -c 2, "
        f"{result.seconds:.1f} s; inbox rows by state {inbox_counts()})"
    )
    return result


def measure(quick: bool, figures: list[Figure] | None = None) -> list[Figure]:
    sizes = QUICK if quick else FULL
    figures = [] if figures is None else figures
    with ExitStack() as stack:
        server = stack.enter_context(private_redis())
        database_url = stack.enter_context(bench_database())
        # Nothing leaves this machine: the stored channels' Cloud API is a local fake, and routing
        # is open all hours (no out-of-hours reply is sent, with either number of channels).
        cloud = stack.enter_context(
            FakeCloudApi(numbers={spec["phone_number_id"]: spec["access_token"] for spec in CHANNELS})
        )
        os.environ.update(
            SECRET_KEY="bench-secret-key", WHATSAPP_API_BASE=cloud.base_url, BUSINESS_HOURS="always"
        )
        configure_environment(database_url, server.url)
        from models.migrate import upgrade_to_head

        upgrade_to_head(database_url)
        broker = stack.enter_context(closing(redis.Redis.from_url(server.url)))

        ingest: dict[int, float] = {1: 0.0, 3: 0.0}
        for round_ in range(sizes.rounds):
            for channels in (1, 3):
                phase(f"(a) webhook ingest over HTTP, {channels} channel(s), round {round_ + 1}")
                use_channels(channels, broker)
                ingest[channels] = max(ingest[channels], ingest_rate(sizes, channels))
        ratio = ingest[3] / ingest[1]
        figures.append(
            Figure(
                "channels",
                "webhooks accepted over HTTP, 3 channels (uvicorn --workers 1)",
                ingest[3],
                "/s",
                ingest[1],
                "1 channel (the settings channel)",
                f"ratio >= {TARGET_RATIO:g}",
                ratio >= TARGET_RATIO,
            )
        )
        ends: dict[int, float] = {1: 0.0, 3: 0.0}
        for round_ in range(sizes.rounds):
            for channels in (1, 3):
                phase(f"(b) end-to-end through the worker, {channels} channel(s), round {round_ + 1}")
                ends[channels] = max(ends[channels], end_to_end(sizes, broker, channels).rate)
        end_ratio = ends[3] / ends[1]
        figures.append(
            Figure(
                "channels",
                "inbox events processed end to end, 3 channels (worker -c 2)",
                ends[3],
                "/s",
                ends[1],
                "1 channel (the settings channel)",
                f"ratio >= {TARGET_RATIO:g}",
                end_ratio >= TARGET_RATIO,
            )
        )
    print(
        f"\nSummary: ingest {ingest[1]:.0f} req/s with 1 channel, {ingest[3]:.0f} req/s with 3 "
        f"(ratio {ratio:.2f}); end-to-end {ends[1]:.0f} events/s with 1, {ends[3]:.0f} with 3 "
        f"(ratio {end_ratio:.2f}); goal: ratio >= {TARGET_RATIO:g}"
    )
    return figures


def main(argv: list[str] | None = None) -> None:
    bench_main(measure, bench_args("bench.channels", DESCRIPTION, "small counts: a smoke run", argv))


if __name__ == "__main__":
    main()
