"""Reading a request body: within a size limit, signed (HMAC), and storable JSON; and the size
limit on every other request body (``BodyLimit``)."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from producers.rejections import Rejected


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise Rejected(413, f"body is larger than {limit} bytes", reason="too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Rejected(413, f"body is larger than {limit} bytes", reason="too_large")
        chunks.append(chunk)
    return b"".join(chunks)


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes answers 413 and is not read further.

    FastAPI reads a route's JSON body whole before it runs the route's dependencies, the admin
    token check among them, so without this an anonymous client could make ``POST /api/...``
    buffer any amount of memory. Paths starting with one of ``exempt`` (the webhooks) are left to
    ``read_body``, which applies ``MAX_BODY_BYTES`` and counts the refusal in the metrics.
    """

    def __init__(
        self, app: ASGIApp, limit: int, exempt: tuple[str, ...] = (), larger: dict[str, int] | None = None
    ) -> None:
        self.app, self.default_limit, self.exempt = app, limit, exempt
        self.larger = larger or {}  # path prefix -> its own limit (media uploads)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = _app_path(scope) if scope["type"] == "http" else ""
        if scope["type"] != "http" or path.startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        limit = next(
            (size for prefix, size in self.larger.items() if path.startswith(prefix)), self.default_limit
        )
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await self._too_large(limit)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            # A body without Content-Length (chunked) is counted as it arrives.
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, f"request body is larger than {limit} bytes")
            return message

        await self.app(scope, limited, send)

    def _too_large(self, limit: int) -> JSONResponse:
        return JSONResponse({"detail": f"request body is larger than {limit} bytes"}, status_code=413)


def _app_path(scope: Scope) -> str:
    """The request path as the app's routes see it (behind ``--root-path``, without that prefix)."""
    path, root = scope["path"], scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def verify_signature(
    secret: str | None,
    body: bytes,
    header_value: str | None,
    *,
    header: str,
    setting: str,
    development_mode: bool,
    algorithm: str = "sha256",
) -> None:
    """Check ``header_value`` == ``<algorithm>=<hex HMAC(secret, raw body)>`` in constant time.

    With no secret (``setting`` unset) the webhook is closed: 503 naming the setting, unless
    ``development_mode``, where it takes unsigned requests. The prefix is optional because some
    senders (WAHA) put the bare hex digest in the header.
    """
    if not secret:
        if development_mode:
            return  # create_app warned at start that this webhook takes unsigned requests
        raise not_configured(setting)
    if not header_value:
        raise Rejected(401, f"missing {header} header", field=header, reason="signature")
    if not signature_matches(secret, body, header_value, algorithm):
        raise Rejected(401, f"{header} does not match the body", field=header, reason="signature")


def signature_matches(secret: str, body: bytes, header_value: str, algorithm: str = "sha256") -> bool:
    """Whether ``header_value`` is ``[<algorithm>=]<hex HMAC(secret, body)>``, in constant time."""
    expected = hmac.new(secret.encode(), body, getattr(hashlib, algorithm)).hexdigest()
    given = header_value.strip().removeprefix(f"{algorithm}=").lower()
    return hmac.compare_digest(expected.encode(), given.encode())


def not_configured(setting: str) -> Rejected:
    """503: the webhook refuses every request until ``setting`` is set (the sender retries)."""
    return Rejected(
        503,
        f"{setting} is not set: this webhook refuses every request until it is "
        "(DEVELOPMENT_MODE=true takes unsigned requests, on a development machine only)",
        reason="not_configured",
    )


# Deeper than any webhook we accept (a Cloud API payload is about 8 levels), well short of the
# depth at which Python's JSON reader gives up (about 1,000).
MAX_JSON_DEPTH = 64
# Python refuses to turn longer digit strings into an int (sys.get_int_max_str_digits()).
_MAX_INT_DIGITS = 4300


def parse_json(body: bytes) -> Any:
    """The JSON document, or 400 naming why not.

    Refused as well, because PostgreSQL's JSONB cannot store it: a NUL character, a lone UTF-16
    surrogate (``"\\ud800"``), ``NaN`` and the infinities (``Infinity``, ``1e400``), integers of
    thousands of digits; and nesting deeper than MAX_JSON_DEPTH. Each would fail later as a 500,
    or as a 503 that the sender retries for ever.
    """
    try:
        document = json.loads(body, parse_constant=_no_constant, parse_float=_float, parse_int=_int)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejected(400, f"body is not JSON: {exc}", reason="not_json") from exc
    except _Unstorable as exc:
        raise Rejected(400, f"body is JSON we cannot store: {exc}", reason="not_json") from exc
    except RecursionError as exc:
        raise Rejected(400, _TOO_DEEP, reason="shape") from exc
    # NUL and surrogates come from \u escapes, or from raw bytes (json.loads decodes them with
    # "surrogatepass"); deep nesting needs many brackets. Plain ASCII without either is fine.
    strings = b"\\u" in body or not body.isascii()
    depth = body.count(b"[") + body.count(b"{") > MAX_JSON_DEPTH
    if strings or depth:
        problem = _unstorable(document, strings=strings, depth=depth)
        if problem:
            raise Rejected(400, problem, reason="shape")
    return document


_TOO_DEEP = f"body is nested more than {MAX_JSON_DEPTH} levels deep"


class _Unstorable(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _Unstorable(f"{name} is not a number JSON allows")


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise _Unstorable(f"{text[:20]} is beyond the range of a number")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise _Unstorable(f"an integer of more than {_MAX_INT_DIGITS} digits")
    return int(text)


def _unstorable(document: Any, *, strings: bool, depth: bool) -> str | None:
    """Why the database could not store ``document``, or None. A loop, not recursion: any depth."""
    pending = [(document, 1)]
    while pending:
        value, level = pending.pop()
        if isinstance(value, str):
            if strings and (problem := _bad_text(value)):
                return problem
            continue
        if not isinstance(value, dict | list):
            continue
        if depth and level > MAX_JSON_DEPTH:
            return _TOO_DEEP
        if isinstance(value, dict):
            for key, item in value.items():
                if strings and (problem := _bad_text(key)):
                    return problem
                pending.append((item, level + 1))
        else:
            pending.extend((item, level + 1) for item in value)
    return None


def _bad_text(text: str) -> str | None:
    if "\x00" in text:
        return "body contains a NUL character (\\u0000)"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "body contains a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text"
    return None
