"""The live event stream's wire: one Redis Stream that the workers and the API write, and every
API process reads for its inbox pages (docs/live.md).

An event is written only after the transaction that recorded its change has committed
(``pipeline.live`` collects them through ``queueing.after_commit``), with ``XADD ... MAXLEN ~``
so the stream keeps about ``LIVE_STREAM_MAXLEN`` events. Each entry has three fields: ``kind``,
``team`` (the conversation's team, for the per-client filter) and ``data`` (the JSON the page
gets). Without Redis (the embedded mode's file broker) the stream is off: ``publish`` does
nothing and ``GET /api/events`` answers 503.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import redis

from settings import settings

STREAM_KEY = "wacrm:live"
MESSAGE, STATUS, CONVERSATION, QUEUE = "message", "status", "conversation", "queue"
LABEL = "label"  # a contact's labels changed: the panel and the queue's chips
KINDS = (MESSAGE, STATUS, CONVERSATION, QUEUE, LABEL)
# Not in the stream: the server tells one page to reload fully (it asked to resume too far back).
RELOAD = "reload"
# A publish must not hold a worker's commit path for long when Redis is away.
SOCKET_TIMEOUT_SECONDS = 2


@dataclass(frozen=True)
class LiveEvent:
    """One event: hashable, so a transaction that records the same change twice sends it once."""

    kind: str
    team: str
    data: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, kind: str, team: str, **data: Any) -> LiveEvent:
        return cls(kind, team, tuple(data.items()))

    def payload(self) -> dict[str, Any]:
        return dict(self.data)

    def fields(self) -> dict[str, str]:
        return {"kind": self.kind, "team": self.team, "data": json.dumps(self.payload(), default=str)}


def decode(fields: Mapping[bytes | str, bytes | str]) -> LiveEvent:
    """A stream entry's fields back into the event (as ``LiveEvent.fields`` wrote them)."""
    text = {_text(key): _text(value) for key, value in fields.items()}
    return LiveEvent(text["kind"], text["team"], tuple(json.loads(text["data"]).items()))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def enabled() -> bool:
    return settings.live_stream_redis_url is not None


@cache
def _client() -> redis.Redis:
    url = settings.live_stream_redis_url
    assert url is not None
    return redis.Redis.from_url(
        url, socket_timeout=SOCKET_TIMEOUT_SECONDS, socket_connect_timeout=SOCKET_TIMEOUT_SECONDS
    )


def publish(events: list[Hashable]) -> None:
    """XADD each event, in order, in one round trip. Raises if Redis cannot be reached (the
    after-commit hook logs it: the records are committed, only the live notice is lost)."""
    if not enabled() or not events:
        return
    with _client().pipeline(transaction=False) as pipe:
        for event in events:
            assert isinstance(event, LiveEvent)
            pipe.xadd(STREAM_KEY, event.fields(), maxlen=settings.live_stream_maxlen, approximate=True)
        pipe.execute()
