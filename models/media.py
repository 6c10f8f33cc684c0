"""Media files (images, videos, voice notes, documents, stickers), inbound and outbound.

An inbound media message gets a row at once (``pending``) and a worker fetches the file from the
gateway into the media store (``stored``, or ``failed`` with the reason). An upload through the
API is ``stored`` from the start. ``key`` is the id the API and the message lists show: random,
so that a media URL cannot be guessed from another.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow
from models.types import BigId

PENDING, STORED, FAILED = "pending", "stored", "failed"


class MediaFile(Base):
    __tablename__ = "media_files"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(32), unique=True)
    # The message it came with (inbound); none for an upload not sent yet.
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"), unique=True)
    source: Mapped[str] = mapped_column(String(16))  # cloud | waha | upload
    # Where the gateway keeps it: the Cloud API media id, or WAHA's file URL.
    remote_ref: Mapped[str | None] = mapped_column(String(2000))
    mime_type: Mapped[str | None] = mapped_column(String(128))
    size: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    filename: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    # A worker fetching it holds it until then; another delivery of the task leaves it alone.
    claimed_until: Mapped[datetime | None]
    error: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    stored_at: Mapped[datetime | None]


class CloudMediaUpload(Base):
    """One of our files uploaded to the Cloud API media endpoint through one channel: the media id
    Meta gave it, reused for every later send of that file through that channel. Unique on (file,
    channel): the worker whose insert made the row uploads (``claimed_until``); the others wait
    for its id instead of uploading the file again."""

    __tablename__ = "cloud_media_uploads"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    media_file_id: Mapped[int] = mapped_column(ForeignKey("media_files.id"))
    channel_key: Mapped[str] = mapped_column(String(32))  # "channel:<id>" or "settings"
    cloud_media_id: Mapped[str | None] = mapped_column(String(128))  # None: being uploaded
    claimed_until: Mapped[datetime | None]  # the uploading worker's hold; a dead one's runs out
    uploaded_at: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("media_file_id", "channel_key"),)
