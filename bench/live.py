"""Live stream benchmark: how soon 100 open inbox pages hear of a new message.

A private redis-server and PostgreSQL database, one worker, one API process (uvicorn). CLIENTS
pages hold ``GET /api/events`` open (ADMIN_TOKEN: every event); inbound messages are posted to
the webhook at RATE per second for SECONDS. For each message, the latency from the webhook's
200 to each page's ``message`` event is taken. Reported: p50 and p95 (goal p95 < 1 s) and how
many pages were served every message. Figures are printed, never asserted.

    .venv/bin/python -m bench.live            # 100 pages, 50 messages/s for 20 s
    .venv/bin/python -m bench.live --quick    # 20 pages, 5 s
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from dataclasses import dataclass, field

from bench.harness import (
    bench_database,
    celery_worker,
    configure_environment,
    phase,
    private_redis,
    uvicorn_server,
)
from bench.report import Figure, bench_args, bench_main
from testkit import samples
from testkit.sse import Event, Parser

DESCRIPTION = "Live stream benchmark: webhook accepted -> message event on 100 open pages."
ADMIN_TOKEN = "bench-live-admin-token-Wq4Zp8Lx2N"
CLIENTS, QUICK_CLIENTS = 100, 20
SECONDS, QUICK_SECONDS = 20, 5
RATE = 50
GOAL_SECONDS = 1.0


async def page(port: int, pages: Pages) -> None:
    """One open stream: the moment each message's event arrives, by message id. Cut off (it
    read too slowly), it reconnects with its Last-Event-ID, as a browser does."""
    last_id: str | None = None
    while True:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        resume = f"Last-Event-ID: {last_id}\r\n" if last_id else ""
        writer.write(
            f"GET /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n"
            f"{resume}\r\n".encode()
        )
        parser = Parser()
        try:
            while line := await reader.readline():
                got = parser.feed(line.decode().rstrip("\r\n"))
                if got == "connected" and last_id is None:
                    pages.connected += 1
                elif isinstance(got, Event):
                    last_id = got.id or last_id
                    if got.kind == "message":
                        pages.arrivals.setdefault(str(got.data["message_id"]), []).append(time.perf_counter())
        finally:
            writer.close()
        pages.cuts += 1


@dataclass
class Pages:
    """``clients`` open streams: when each message id reached each of them."""

    arrivals: dict[str, list[float]] = field(default_factory=dict)
    connected: int = 0
    cuts: int = 0  # reconnections after being cut off for reading too slowly
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def open(cls, port: int, clients: int) -> Pages:
        pages = cls()
        pages.tasks = [asyncio.create_task(page(port, pages)) for _ in range(clients)]
        while pages.connected < clients:
            await asyncio.sleep(0.05)
        return pages

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()


def message_ids() -> dict[str, int]:
    from sqlalchemy import select

    from models import Message
    from models.db import session_scope

    with session_scope() as session:
        return dict(session.execute(select(Message.external_id, Message.id)).all())


async def drive(port: int, clients: int, seconds: int, figures: list[Figure]) -> None:
    import httpx

    pages = await Pages.open(port, clients)
    phase(f"{clients} pages open; {RATE} messages/s for {seconds} s")
    accepted: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        started = time.perf_counter()
        for n in range(RATE * seconds):
            due = n / RATE
            message = samples.text(f"62812{n:08d}", "Halo kak, masih ada?")
            payload = samples.envelope(messages=[message], contacts=[samples.profile(f"62812{n:08d}", "B")])
            body, headers = samples.encode(payload)
            await asyncio.sleep(max(0.0, due - (time.perf_counter() - started)))  # open loop, RATE/s
            answer = await client.post("/webhooks/whatsapp", content=body, headers=headers)
            if answer.status_code == 200:
                accepted[message["id"]] = time.perf_counter()
    await asyncio.sleep(10)  # the last messages' events
    pages.close()
    ids = await asyncio.to_thread(message_ids)
    latencies, served = [], clients
    for wamid, at in accepted.items():
        got = pages.arrivals.get(str(ids.get(wamid)), [])
        served = min(served, len(got))
        latencies += [arrived - at for arrived in got]
    p50 = statistics.median(latencies) if latencies else float("nan")
    p95 = statistics.quantiles(latencies, n=100)[94] if len(latencies) > 1 else float("nan")
    print(
        f"   p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms (goal < {GOAL_SECONDS * 1000:.0f} ms); "
        f"{served}/{clients} pages got every one of {len(accepted)} messages"
    )
    figures.append(
        Figure(
            "live",
            "p95 webhook accepted -> event on every page",
            p95 * 1000,
            "ms",
            goal=f"< {GOAL_SECONDS * 1000:.0f} ms",
            met=p95 < GOAL_SECONDS,
        )
    )
    figures.append(Figure("live", "p50 webhook accepted -> event", p50 * 1000, "ms"))
    figures.append(Figure("live", "pages that got every message", served, "", clients, "pages open"))


async def fan_out(port: int, clients: int, seconds: int, figures: list[Figure]) -> None:
    """The stream alone: events XADDed straight to the stream at RATE/s (no webhook, no
    worker), timed from the XADD to each page. Says whether the fan-out meets the goal when
    the ingest workers do not keep up."""
    from queueing import live

    pages = await Pages.open(port, clients)
    phase(f"fan-out alone: {clients} pages open; {RATE} events/s written to the stream for {seconds} s")
    written: dict[str, float] = {}
    started = time.perf_counter()
    for n in range(RATE * seconds):
        await asyncio.sleep(max(0.0, n / RATE - (time.perf_counter() - started)))
        written[f"fan-{n}"] = time.perf_counter()
        event = live.LiveEvent.of(live.MESSAGE, "bench", message_id=f"fan-{n}")
        await asyncio.to_thread(live.publish, [event])
    await asyncio.sleep(5)
    pages.close()
    latencies = [arrived - at for key, at in written.items() for arrived in pages.arrivals.get(key, [])]
    served = min(len(pages.arrivals.get(key, [])) for key in written)
    p95 = statistics.quantiles(latencies, n=100)[94] if len(latencies) > 1 else float("nan")
    print(
        f"   fan-out p95 {p95 * 1000:.0f} ms; {served}/{clients} pages got all {len(written)} events; "
        f"{pages.cuts} cut off for reading too slowly (and resumed)"
    )
    figures.append(
        Figure(
            "live",
            "p95 event written -> every page (fan-out alone)",
            p95 * 1000,
            "ms",
            goal=f"< {GOAL_SECONDS * 1000:.0f} ms",
            met=p95 < GOAL_SECONDS and served == clients,
        )
    )


def measure(quick: bool, figures: list[Figure]) -> None:
    clients, seconds = (QUICK_CLIENTS, QUICK_SECONDS) if quick else (CLIENTS, SECONDS)
    with private_redis() as redis_server, bench_database() as database_url:
        configure_environment(database_url, redis_server.url)
        os.environ.update(ADMIN_TOKEN=ADMIN_TOKEN, DEVELOPMENT_MODE="true", BUSINESS_HOURS="always")
        os.environ.pop("WHATSAPP_APP_SECRET", None)
        from models.migrate import upgrade_to_head

        upgrade_to_head()
        with celery_worker() as worker, uvicorn_server(1) as port:
            worker.wait_ready()
            asyncio.run(drive(port, clients, seconds, figures))
            asyncio.run(fan_out(port, clients, seconds, figures))


def main(argv: list[str] | None = None) -> None:
    bench_main(measure, bench_args("bench.live", DESCRIPTION, "20 pages for 5 s: a smoke run", argv))


if __name__ == "__main__":
    main()
