"""Reading a request body: within a size limit, signed (HMAC), and storable JSON."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from fastapi import Request

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


def verify_signature(
    secret: str | None, body: bytes, header_value: str | None, *, header: str, algorithm: str = "sha256"
) -> None:
    """Check ``header_value`` == ``<algorithm>=<hex HMAC(secret, raw body)>`` in constant time.

    With no secret configured there is nothing to check. The prefix is optional because some
    senders (WAHA) put the bare hex digest in the header.
    """
    if not secret:
        return
    if not header_value:
        raise Rejected(401, f"missing {header} header", field=header, reason="signature")
    expected = hmac.new(secret.encode(), body, getattr(hashlib, algorithm)).hexdigest()
    given = header_value.strip().removeprefix(f"{algorithm}=").lower()
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise Rejected(401, f"{header} does not match the body", field=header, reason="signature")


def parse_json(body: bytes) -> Any:
    """The JSON document, or 400 naming why not."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejected(400, f"body is not JSON: {exc}", reason="not_json") from exc
    if b"\\u0000" in body and _has_nul(document):
        # PostgreSQL's JSONB cannot store it; refusing beats a 503 the sender would retry forever.
        raise Rejected(400, "body contains a NUL character (\\u0000)", reason="shape")
    return document


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False
