"""Signed, expiring links to one of our stored files: ``/f/<key>?expires=<unix>&signature=<sig>``.

What a WAHA channel is given instead of the file's bytes, so that WAHA fetches the file from us
as it sends and no worker holds it in memory (docs/rich-messages.md, "WAHA"). The signature is
128 bits of an HMAC-SHA256 of the key and the expiry under a key derived from SECRET_KEY (no
second secret), so a link cannot be made for another file or kept past its expiry, and changing
SECRET_KEY retires every link.
"""

from __future__ import annotations

from domain import signatures

# Long enough for WAHA to fetch the file while the send is retried; a later send makes a new link.
LINK_SECONDS = 3600


def link_key(secret_key: str) -> bytes:
    return signatures.derived_key(b"wacrm media link", secret_key)


def path_of(key: bytes, media_key: str, now: float) -> str:
    expires = int(now) + LINK_SECONDS
    signed = signatures.signature(key, _signed(media_key, expires))
    return f"/f/{media_key}?expires={expires}&signature={signed}"


def is_valid(key: bytes, media_key: str, expires: int, signature: str, now: float) -> bool:
    """Whether the link was made by us for this file and has not expired."""
    if not now <= expires <= now + LINK_SECONDS + 60:  # no link of ours lives longer
        return False
    return signatures.matches(key, _signed(media_key, expires), signature)


def _signed(media_key: str, expires: int) -> str:
    return f"media:{media_key}:{expires}"
