"""The public link WAHA is given to fetch one of our files (domain/media_links.py signs it)."""

from __future__ import annotations

import time

from domain.media_links import is_valid, link_key, path_of
from settings import settings


def url_of(media_key: str) -> str | None:
    """An absolute signed link, or None without both SECRET_KEY and PUBLIC_URL (no link that
    WAHA could open can be made)."""
    if not settings.secret_key or not settings.public_url:
        return None
    return (
        f"{settings.public_url.rstrip('/')}{path_of(link_key(settings.secret_key), media_key, time.time())}"
    )


def allows(media_key: str, expires: int, signature: str) -> bool:
    if not settings.secret_key:
        return False
    return is_valid(link_key(settings.secret_key), media_key, expires, signature, time.time())
