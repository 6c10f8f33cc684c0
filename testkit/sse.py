"""Reading a server-sent-events stream (``GET /api/events``) line by line, as a browser's
EventSource does: shared by the live stream's tests and its benchmark."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Event:
    kind: str  # the ``event:`` field ("message" when absent, as in a browser)
    id: str | None
    data: Any  # the ``data:`` JSON, decoded


class Parser:
    """Feed it the stream's lines; it returns an ``Event`` when a blank line ends one, a comment's
    text for a ``:`` line, else None. ``retry`` keeps the last ``retry:`` value seen."""

    def __init__(self) -> None:
        self.retry: int | None = None
        self._kind = "message"
        self._id: str | None = None
        self._data: list[str] = []

    def feed(self, line: str) -> Event | str | None:
        if line.startswith(":"):
            return line[1:].strip()
        if not line:
            return self._dispatch()
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._kind = value
        elif name == "id":
            self._id = value
        elif name == "data":
            self._data.append(value)
        elif name == "retry" and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> Event | None:
        event = None
        if self._data:
            event = Event(self._kind, self._id, json.loads("\n".join(self._data)))
        self._kind, self._id, self._data = "message", None, []
        return event
