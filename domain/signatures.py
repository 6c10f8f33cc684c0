"""Short HMAC signatures for links we hand out (the order tracker's ``/t/``, a file's ``/f/``).

Each kind of link signs under its own key derived from SECRET_KEY (no second secret to keep,
and a signature for one kind is worth nothing for another); a signature is 128 bits of
HMAC-SHA256, URL-safe base64 without padding (22 characters).
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def derived_key(purpose: bytes, secret_key: str) -> bytes:
    return hmac.new(purpose, secret_key.encode(), hashlib.sha256).digest()


def signature(key: bytes, message: str) -> str:
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def matches(key: bytes, message: str, given: str) -> bool:
    """Whether ``given`` is our signature of ``message``, compared in constant time (any text:
    a link's query may hold characters a signature never has)."""
    return hmac.compare_digest(given.encode(), signature(key, message).encode())
