"""Local fakes of the outside world: real HTTP servers on 127.0.0.1 speaking the vendors' formats.

The gateways are tested through their real HTTP code against these, never against mocks of
``requests``, so timeouts, refused and dropped connections happen for real. A fake records every
request it gets and every message it accepted (what would have reached a customer), and can be
scripted to fail, to answer late after accepting, to hang up after accepting, or to answer an
error after accepting (a proxy's 502).

``FakeServer`` is the shared machinery; ``cloud_api.FakeCloudApi`` and ``waha.FakeWaha`` say
what each vendor answers.
"""

from __future__ import annotations

import email
import email.policy
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any = None  # JSON-encoded when not bytes
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to sleep before answering
    drop: bool = False  # close the connection without any answer
    content_type: str | None = None  # of a bytes body (default text/plain)


@dataclass(frozen=True)
class Part:
    """One field of a multipart/form-data request: its value, and the file name and type of a file."""

    data: bytes
    filename: str | None = None
    content_type: str | None = None


def parse_multipart(content_type: str, raw: bytes) -> dict[str, Part]:
    """The fields of a multipart/form-data body, by name (the standard library's MIME parser)."""
    envelope = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode() + raw
    message = email.message_from_bytes(envelope, policy=email.policy.HTTP)
    parts: dict[str, Part] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            data = part.get_payload(decode=True) or b""
            parts[name] = Part(
                data, part.get_filename(), part.get_content_type() if part.get_filename() else None
            )
    return parts


@dataclass(frozen=True)
class Action:
    """One scripted behaviour, used by the next request that passes authentication."""

    kind: Literal["fail", "delay", "drop", "accept_fail"]
    status: int = 500
    code: int | None = None
    retry_after: float | None = None
    seconds: float = 0.0


class FakeServer:
    """A ``ThreadingHTTPServer`` on 127.0.0.1 and a free port, serving from a daemon thread as
    soon as it is built. Subclasses implement ``handle``; use as a context manager to stop it."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []  # body, received_at, path, headers (lower-case)
        self.accepted: list[dict[str, Any]] = []  # bodies of the messages that would be delivered
        self._lock = threading.Lock()
        self._script: deque[Action] = deque()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=type(self).__name__, daemon=True
        )
        self._thread.start()

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def handle(self, path: str, headers: dict[str, str], body: Any) -> Reply:
        raise NotImplementedError

    def handle_get(self, path: str, headers: dict[str, str]) -> Reply:
        return Reply(404, {"error": f"no GET {path}"})

    def handle_put(self, path: str, headers: dict[str, str], body: Any) -> Reply:
        return Reply(404, {"error": f"no PUT {path}"})

    def handle_multipart(self, path: str, headers: dict[str, str], parts: dict[str, Part]) -> Reply:
        return Reply(404, {"error": f"no multipart POST {path}"})

    # Scripting. Each call queues ``times`` actions, taken in order by the following requests.
    def fail_next(
        self, status: int, code: int | None = None, times: int = 1, retry_after: float | None = None
    ) -> None:
        """Answer the next ``times`` requests with ``status`` (and the vendor's error body)."""
        self._queue(Action("fail", status=status, code=code, retry_after=retry_after), times)

    def accept_then_fail_next(self, status: int, times: int = 1, retry_after: float | None = None) -> None:
        """Accept the next ``times`` messages but answer ``status`` with a bare body, as a proxy in
        front of the vendor does when the vendor's own answer is lost (502, 504)."""
        self._queue(Action("accept_fail", status=status, retry_after=retry_after), times)

    def delay_next(self, seconds: float, times: int = 1) -> None:
        """Accept the next ``times`` messages but answer only after ``seconds``."""
        self._queue(Action("delay", seconds=seconds), times)

    def drop_next(self, times: int = 1) -> None:
        """Accept the next ``times`` messages, then hang up without answering."""
        self._queue(Action("drop"), times)

    def next_action(self) -> Action | None:
        with self._lock:
            return self._script.popleft() if self._script else None

    def accept(self, body: Any) -> None:
        with self._lock:
            self.accepted.append(body)

    def reset(self) -> None:
        """Forget every request and acceptance, and drop what was scripted: a fresh server."""
        with self._lock:
            self.requests.clear()
            self.accepted.clear()
            self._script.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _queue(self, action: Action, times: int) -> None:
        with self._lock:
            self._script.extend([action] * times)

    def _record(self, path: str, headers: dict[str, str], body: Any, method: str = "POST") -> None:
        with self._lock:
            self.requests.append(
                {"body": body, "received_at": time.time(), "path": path, "headers": headers, "method": method}
            )


def _handler_for(fake: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # Keep-alive, as the real services speak it: a client's pooled connection is reused, so a
        # request's arrival is not delayed by a new connection and a new server thread each time.
        protocol_version = "HTTP/1.1"
        # Without it a keep-alive answer (headers, then the body, two writes) waits for the
        # client's delayed ACK: 40 ms per call on Linux, which no real service behind a proxy costs.
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            content_type = self.headers.get("Content-Type") or ""
            if content_type.startswith("multipart/form-data"):
                headers = {name.lower(): value for name, value in self.headers.items()}
                parts = parse_multipart(content_type, raw)
                fake._record(self.path, headers, {name: part.filename or "" for name, part in parts.items()})
                self._answer(fake.handle_multipart(self.path, headers, parts))
                return
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            headers = {name.lower(): value for name, value in self.headers.items()}
            fake._record(self.path, headers, body)
            self._answer(fake.handle(self.path, headers, body))

        def do_PUT(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            headers = {name.lower(): value for name, value in self.headers.items()}
            fake._record(self.path, headers, body, method="PUT")
            self._answer(fake.handle_put(self.path, headers, body))

        def do_GET(self) -> None:
            headers = {name.lower(): value for name, value in self.headers.items()}
            fake._record(self.path, headers, None, method="GET")
            self._answer(fake.handle_get(self.path, headers))

        def _answer(self, reply: Reply) -> None:
            if reply.delay:
                time.sleep(reply.delay)
            if reply.drop:
                self.close_connection = True
                return
            if isinstance(reply.body, bytes):
                payload, content_type = reply.body, reply.content_type or "text/plain"
            else:
                payload, content_type = json.dumps(reply.body).encode(), "application/json"
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a read timeout): what delay_next is for

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler
