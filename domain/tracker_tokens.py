"""Order tracker links: ``/t/<token>``, a page anyone holding the link may open, nobody can guess.

The token is ``<order row id>-<signature>``: the signature is an HMAC-SHA256 of the order id
under a key derived from SECRET_KEY (no second secret to keep), cut to 128 bits. The page learns
the order from the token without a table of links, a token for another order cannot be made
without the key, and changing SECRET_KEY retires every link handed out.
"""

from __future__ import annotations

import re

from domain import signatures

_TOKEN = re.compile(r"^(?P<order>\d{1,19})-(?P<signature>[A-Za-z0-9_-]{22})$")


def tracker_key(secret_key: str) -> bytes:
    return signatures.derived_key(b"wacrm order tracker", secret_key)


def make_token(key: bytes, order_id: int) -> str:
    return f"{order_id}-{signatures.signature(key, f'order:{order_id}')}"


def read_token(key: bytes, token: str) -> int | None:
    """The order row id of a token we made, or None (malformed, or not signed by us)."""
    match = _TOKEN.match(token)
    if not match:
        return None
    order_id = int(match["order"])
    return order_id if signatures.matches(key, f"order:{order_id}", match["signature"]) else None
