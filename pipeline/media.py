"""Media files: noted when a media message arrives, fetched by a worker, kept in the media store.

The row is written in the transaction that stores the message, and the download is published
after that commit; the worker then claims the row for a while (``claimed_until``), fetches
outside any transaction (a 16 MB video must not hold a database lock), and records the outcome
in a second, short transaction. A transient failure tries again later; a permanent one (not a
gateway host, too large, a sha256 that does not match) is ``failed`` with its reason. The
sweeper publishes again what a lost task left pending.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from domain.message_types import MEDIA_TYPES
from integrations.whatsapp.media import MediaSource
from models import MediaFile, Message
from models.base import utcnow
from models.media import FAILED, PENDING, STORED
from queueing import publish
from queueing.after_commit import publish_after_commit
from settings import settings

# How long a worker holds a download before another may take it over.
CLAIM_SECONDS = 300
MAX_ATTEMPTS = 8


def new_key() -> str:
    return secrets.token_urlsafe(16)  # 22 characters, 128 random bits


def note_inbound(session: Session, message: Message) -> MediaFile | None:
    """A pending media row for an inbound media message, its download published after commit."""
    if message.type not in MEDIA_TYPES:
        return None
    payload: dict[str, Any] = message.payload or {}
    body = payload.get(message.type) if isinstance(payload.get(message.type), dict) else {}
    if "waha" in payload:
        source, ref = "waha", body.get("url")
    else:
        source, ref = "cloud", body.get("id")
    media = MediaFile(
        key=new_key(),
        message_id=message.id,
        source=source,
        remote_ref=str(ref)[:2000] if ref else None,
        mime_type=(str(body.get("mime_type"))[:128] if body.get("mime_type") else None),
        sha256=None,
        filename=(str(body.get("filename"))[:255] if body.get("filename") else None),
        state=PENDING if ref else FAILED,
        error=None if ref else {"message": f"the {source} message names no media to fetch"},
    )
    session.add(media)
    session.flush()
    if ref:
        publish_after_commit(session, "media_to_download", media.id, publish.download_media)
    return media


def claim(session: Session, media_id: int) -> MediaFile | None:
    """The pending row, now held by this worker for CLAIM_SECONDS; None if it is done or held."""
    now = utcnow()
    media = session.scalars(
        select(MediaFile)
        .where(
            MediaFile.id == media_id,
            MediaFile.state == PENDING,
            or_(MediaFile.claimed_until.is_(None), MediaFile.claimed_until < now),
        )
        .with_for_update(skip_locked=True)
    ).first()
    if media is not None:
        media.claimed_until = now + timedelta(seconds=CLAIM_SECONDS)
        media.attempts += 1
    return media


def stored(session: Session, media_id: int, *, mime_type: str, size: int, sha256: str) -> None:
    media = session.get(MediaFile, media_id, with_for_update=True)
    if media is None or media.state != PENDING:
        return
    media.state, media.mime_type, media.size, media.sha256 = STORED, mime_type, size, sha256
    media.stored_at, media.claimed_until, media.error = utcnow(), None, None


def failed(session: Session, media_id: int, error: str, *, permanent: bool) -> float | None:
    """Record a failed fetch; the seconds until the next try, or None when there is none."""
    media = session.get(MediaFile, media_id, with_for_update=True)
    if media is None or media.state != PENDING:
        return None
    media.error = {"message": error[:2000]}
    if permanent or media.attempts >= MAX_ATTEMPTS:
        media.state, media.claimed_until = FAILED, None
        return None
    # Released: the retry published with this delay takes it (or the sweeper, if that is lost).
    media.claimed_until = None
    return min(2.0**media.attempts, 300.0)


def source_for(media: MediaFile) -> MediaSource:
    """Where this file is fetched from, with the credentials of the gateway it came through."""
    limits = {"max_bytes": settings.media_max_bytes, "timeout": settings.media_download_timeout_seconds}
    if media.source == "waha":
        headers = {"X-Api-Key": settings.waha_api_key} if settings.waha_api_key else {}
        return MediaSource("waha", settings.waha_url or "", headers, _hosts(settings.waha_url), **limits)
    headers = {"Authorization": f"Bearer {settings.whatsapp_access_token or ''}"}
    allowed = _hosts(settings.whatsapp_api_base) | {
        host.strip() for host in settings.media_download_hosts.split(",") if host.strip()
    }
    return MediaSource("cloud", settings.whatsapp_api_base, headers, frozenset(allowed), **limits)


def waiting(session: Session, older_than_seconds: float, limit: int) -> list[int]:
    """Pending rows nobody holds, whose task may have been lost (for the sweeper)."""
    now = utcnow()
    cutoff = now - timedelta(seconds=older_than_seconds)
    return list(
        session.scalars(
            select(MediaFile.id)
            .where(
                MediaFile.state == PENDING,
                MediaFile.created_at < cutoff,
                or_(MediaFile.claimed_until.is_(None), MediaFile.claimed_until < now),
            )
            .order_by(MediaFile.id)
            .limit(limit)
        )
    )


def _hosts(url: str | None) -> frozenset[str]:
    from urllib.parse import urlsplit

    host = urlsplit(url or "").hostname
    return frozenset({host}) if host else frozenset()
