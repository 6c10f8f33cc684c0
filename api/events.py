"""``GET /api/events``: the live event stream of the inbox, as server-sent events (docs/live.md).

Each API process has one ``Hub``: one reader of the Redis Stream (``XREAD BLOCK``), started by
the first subscriber and stopped when the last one leaves, that hands every event to each of
its clients' buffers, filtered by the client's teams. A hundred open pages cost one blocking
Redis connection, not a hundred.

A client starts at a position in the stream: the ``Last-Event-ID`` it sends when it reconnects,
else the stream's end when it connects. It first reads what it missed since that position
(``XRANGE``, in pages), then its buffer, skipping what it already sent: so every event after its
position reaches it once, in order. A position older than the stream's trimmed start (or a
stream that is gone) gets one ``reload`` event instead: the page reloads its data fully. A client
whose buffer fills (``LIVE_CLIENT_BUFFER``: it reads too slowly) is cut off rather than growing
the process's memory; it reconnects with its ``Last-Event-ID`` and resumes.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Any

import redis.asyncio as aioredis
from fastapi import APIRouter, Header, HTTPException, Request
from redis.exceptions import RedisError
from sse_starlette import EventSourceResponse, JSONServerSentEvent, ServerSentEvent

from api.auth import Caller, Principal
from pipeline import live as live_records
from queueing.live import RELOAD, STREAM_KEY, LiveEvent, decode
from settings import Settings

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["live"])

EVENT_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
RETRY_MS = 3000  # how long a browser waits before it reconnects, sent once
BLOCK_MS = 5000  # one XREAD waits this long for news, then asks again
PAGE = 500  # entries per XREAD / XRANGE
REDIS_CONNECTIONS = 10  # per API process: the reader's, and the catching-up pages share the rest
READER_RETRY_SECONDS = 1.0  # after a Redis error, the reader tries again this soon
SEND_TIMEOUT_SECONDS = 30  # a socket that takes no data this long is closed
CUT_OFF = None  # put in a client's buffer when it is cut off


def position(event_id: str) -> tuple[int, int]:
    """A stream id ("<ms>-<seq>") as something that sorts like the stream."""
    millis, _, sequence = event_id.partition("-")
    return int(millis), int(sequence or 0)


@dataclass(eq=False)
class Client:
    principal: Principal
    limit: int
    buffer: asyncio.Queue[tuple[str, LiveEvent] | None] = field(default_factory=asyncio.Queue)
    cut_off: bool = False

    def offer(self, event_id: str, event: LiveEvent) -> bool:
        """Queue an event this client may see; False when its buffer is full (cut it off)."""
        if not self.principal.sees_team(event.team):
            return True
        if self.buffer.qsize() >= self.limit:
            self.cut_off = True
            self.buffer.put_nowait(CUT_OFF)
            return False
        self.buffer.put_nowait((event_id, event))
        return True


class Hub:
    """This process's one reader of the stream and its clients."""

    def __init__(self, url: str) -> None:
        # Replies are waited for longer than one XREAD blocks. A hundred pages opening at once
        # each read what they missed: they wait their turn for one of a few connections
        # (a plain pool refuses the one past its size, and that page lost its events).
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=REDIS_CONNECTIONS,
            timeout=BLOCK_MS / 1000 + 10,
            socket_timeout=BLOCK_MS / 1000 + 10,
        )
        self.redis = aioredis.Redis(connection_pool=pool)
        self.clients: set[Client] = set()
        self.task: asyncio.Task[None] | None = None
        self.started: asyncio.Future[str] | None = None
        self.cursor = "0-0"  # the newest event handed to the clients

    async def join(self, client: Client) -> str:
        """Add a client; returns its position: every event after it reaches the client's buffer
        (the reader's newest when it is running, else where it starts). Raises RedisError if
        the stream cannot be read."""
        self.clients.add(client)
        if self.task is None or self.task.done():
            self.started = asyncio.get_running_loop().create_future()
            self.task = asyncio.create_task(self._read(self.started), name="live-stream-reader")
        assert self.started is not None
        if self.started.done() and not self.started.cancelled() and self.started.exception() is None:
            return self.cursor  # read with no await since the client was added: nothing in between
        try:
            return await asyncio.shield(self.started)
        except BaseException:
            self.leave(client)
            raise

    def leave(self, client: Client) -> None:
        self.clients.discard(client)
        if not self.clients and self.task is not None:
            self.task.cancel()  # nobody listens: no Redis connection held for nobody
            self.task = None

    async def end(self) -> str | None:
        """The newest id in the stream (None: the stream is empty or gone)."""
        newest = await self.redis.xrevrange(STREAM_KEY, count=1)
        return newest[0][0].decode() if newest else None

    async def start(self) -> str | None:
        """The oldest id still in the stream (None: the stream is empty or gone)."""
        oldest = await self.redis.xrange(STREAM_KEY, count=1)
        return oldest[0][0].decode() if oldest else None

    async def since(self, after: str) -> list[tuple[str, LiveEvent]]:
        """Up to PAGE events after ``after``, oldest first."""
        entries = await self.redis.xrange(STREAM_KEY, min=f"({after}", count=PAGE)
        return [(raw_id.decode(), decode(fields)) for raw_id, fields in entries]

    async def _read(self, started: asyncio.Future[str]) -> None:
        try:
            self.cursor = await self.end() or "0-0"
        except RedisError as error:
            started.set_exception(error)
            return
        except asyncio.CancelledError:
            started.cancel()  # the last client left while it started
            raise
        started.set_result(self.cursor)
        while True:
            try:
                batches = await self.redis.xread({STREAM_KEY: self.cursor}, count=PAGE, block=BLOCK_MS)
            except RedisError:
                log.warning("the live stream cannot be read; trying again", exc_info=True)
                await asyncio.sleep(READER_RETRY_SECONDS)
                continue
            for _key, entries in batches or ():
                for raw_id, fields in entries:
                    self.cursor = raw_id.decode()
                    self._fan_out(self.cursor, decode(fields))

    def _fan_out(self, event_id: str, event: LiveEvent) -> None:
        for client in list(self.clients):
            if not client.offer(event_id, event):
                log.info("a live client read too slowly: cut off", extra={"login": client.principal.login})
                self.clients.discard(client)


def hub_of(request: Request) -> Hub:
    """The process's hub (created on the first subscriber); 503 when the stream is off."""
    config: Settings = request.app.state.settings
    url = config.live_stream_redis_url
    if url is None:
        raise HTTPException(
            503,
            "the live event stream needs Redis: set LIVE_REDIS_URL, or a redis:// CELERY_BROKER_URL "
            "(the embedded file broker has no stream); poll the API meanwhile",
        )
    hub: Hub | None = getattr(request.app.state, "live_hub", None)
    if hub is None:
        hub = request.app.state.live_hub = Hub(url)
    return hub


@router.get("/events", response_class=EventSourceResponse)
async def events(
    request: Request,
    caller: Caller,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=50)] = None,
) -> EventSourceResponse:
    """Server-sent events for the inbox: ``message``, ``status``, ``conversation`` and ``queue``,
    of the caller's teams only, each with an ``id:``; reconnect with ``Last-Event-ID`` to get
    every event missed since, or one ``reload`` event when that is too far back."""
    if last_event_id is not None and not EVENT_ID.match(last_event_id.strip()):
        raise HTTPException(400, "Last-Event-ID: not an event id of this stream (<ms>-<seq>)")
    config: Settings = request.app.state.settings
    hub = hub_of(request)
    client = Client(caller, config.live_client_buffer)
    try:
        joined_at = await hub.join(client)
    except RedisError as error:
        raise HTTPException(503, "the live event stream's Redis is unavailable; try again") from error
    log.info("live client connected", extra={"login": caller.login, "resumed": last_event_id is not None})
    return EventSourceResponse(
        _stream(hub, client, last_event_id.strip() if last_event_id else None, joined_at),
        ping=config.live_keepalive_seconds,
        send_timeout=SEND_TIMEOUT_SECONDS,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},  # no proxy buffering
    )


async def _stream(hub: Hub, client: Client, resume_from: str | None, joined_at: str) -> AsyncIterator[Any]:
    try:
        yield ServerSentEvent(retry=RETRY_MS, comment="connected")
        cursor = joined_at
        if resume_from is not None:
            if await _resumable(hub, resume_from):
                cursor = resume_from
            else:
                yield JSONServerSentEvent(
                    {"reason": "the events since your last one are no longer kept: reload"},
                    event=RELOAD,
                    id=joined_at,
                )
        # What came after the client's position and before the reader's: from the stream itself.
        while True:
            page = await hub.since(cursor)
            for event_id, event in page:
                cursor = event_id
                if client.principal.sees_team(event.team):
                    yield _sse(event_id, event)
            if len(page) < PAGE:
                break
        while True:
            chunk, cursor, cut_off = _ready(client, await client.buffer.get(), cursor)
            if chunk:
                yield chunk
            if cut_off:
                return  # read too slowly: the client reconnects with its Last-Event-ID
    except RedisError:
        log.warning("the live stream cannot be read for a client: closing it", exc_info=True)
    finally:
        hub.leave(client)


async def _resumable(hub: Hub, resume_from: str) -> bool:
    """Whether every event after ``resume_from`` is still kept: it lies between the stream's
    oldest and newest entry (beyond the newest: a stream that was emptied and begun again)."""
    oldest, newest = await hub.start(), await hub.end()
    if oldest is None or newest is None:
        return False
    return position(oldest) <= position(resume_from) <= position(newest)


def _ready(client: Client, first: tuple[str, LiveEvent] | None, cursor: str) -> tuple[bytes, str, bool]:
    """``first`` and whatever else is waiting in the client's buffer, as one chunk: a client
    behind by many events gets them in one write, not one each. Returns the chunk, the new
    cursor, and whether the client was cut off."""
    parts: list[bytes] = []
    item: tuple[str, LiveEvent] | None = first
    while True:
        if item is CUT_OFF:
            return b"".join(parts), cursor, True
        event_id, event = item
        if position(event_id) > position(cursor):  # else sent already, from the stream itself
            cursor = event_id
            parts.append(_sse(event_id, event))
        if client.buffer.empty():
            return b"".join(parts), cursor, False
        item = client.buffer.get_nowait()


def _sse(event_id: str, event: LiveEvent) -> bytes:
    """An event as it goes on the wire: encoded once, however many clients get it (an event
    whose data holds a list read back from the stream is not hashable: encoded each time)."""
    try:
        return _encoded(event_id, event)
    except TypeError:
        return _encode(event_id, event)


def _encode(event_id: str, event: LiveEvent) -> bytes:
    return JSONServerSentEvent(event.payload(), event=event.kind, id=event_id).encode()


_encoded = lru_cache(maxsize=4096)(_encode)


def install(application: Any) -> None:
    """Called by the app factory: what this process's API records is announced live too."""
    live_records.install()
