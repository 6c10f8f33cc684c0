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
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from domain.message_types import MEDIA_TYPES
from integrations.whatsapp.base import PermanentError
from integrations.whatsapp.media import Fetched, MediaSource, fetch_cloud, fetch_waha
from models import Channel, Conversation, MediaFile, Message
from models.base import utcnow
from models.media import FAILED, PENDING, STORED
from models.secret_box import SecretKeyMissing, SecretUnreadable, decrypt
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


@dataclass(frozen=True)
class Download:
    """A claimed file to fetch, with what the fetch needs once the transaction is over."""

    key: str
    kind: str  # cloud | waha
    ref: str
    declared_type: str | None
    source: MediaSource | None
    unreadable: PermanentError | None = None  # the channel's credentials could not be read

    @classmethod
    def of(cls, session: Session, media: MediaFile) -> Download:
        try:
            source, unreadable = source_for(session, media), None
        except PermanentError as exc:
            source, unreadable = None, exc
        return cls(media.key, media.source, media.remote_ref or "", media.mime_type, source, unreadable)

    def fetch(self) -> Fetched:
        if self.source is None:
            raise self.unreadable or PermanentError("no source to fetch from")
        if self.kind == "waha":
            return fetch_waha(self.source, self.ref, self.declared_type)
        return fetch_cloud(self.source, self.ref)


def source_for(session: Session, media: MediaFile) -> MediaSource:
    """Where this file is fetched from, with the credentials of the channel it came through (the
    settings channel's when the conversation has none)."""
    limits = {"max_bytes": settings.media_max_bytes, "timeout": settings.media_download_timeout_seconds}
    channel = _channel_of(session, media)
    try:
        return _source(channel, media.source, limits)
    except (SecretKeyMissing, SecretUnreadable) as exc:
        raise PermanentError(f"the channel's credentials cannot be read: {exc}") from exc


def _source(channel: Channel | None, kind: str, limits: dict[str, Any]) -> MediaSource:
    if kind == "waha":
        url = channel.waha_url if channel else settings.waha_url
        key = decrypt(channel.api_key_secret) if channel else settings.waha_api_key
        headers = {"X-Api-Key": key} if key else {}
        return MediaSource("waha", url or "", headers, _hosts(url), **limits)
    token = decrypt(channel.access_token_secret) if channel else settings.whatsapp_access_token
    headers = {"Authorization": f"Bearer {token or ''}"}
    allowed = _hosts(settings.whatsapp_api_base) | {
        host.strip() for host in settings.media_download_hosts.split(",") if host.strip()
    }
    return MediaSource("cloud", settings.whatsapp_api_base, headers, frozenset(allowed), **limits)


def _channel_of(session: Session, media: MediaFile) -> Channel | None:
    if media.message_id is None:
        return None
    return session.scalar(
        select(Channel)
        .join(Conversation, Conversation.channel_id == Channel.id)
        .join(Message, Message.conversation_id == Conversation.id)
        .where(Message.id == media.message_id)
    )


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
