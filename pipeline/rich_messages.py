"""One message model for every sender: a rich message checked and made ready for the outbox.

Agents, automation, broadcasts and the end response all hand over a Cloud API message object
without ``messaging_product``/``to`` (docs/rich-messages.md). ``prepare`` checks it against
WhatsApp's limits for the channel's gateway (domain/outbound_kinds.py) and resolves a media
``id`` that is one of our files (POST /api/media) to its ``media_files`` row, so the outbound
worker can upload it to the Cloud API once per channel (``cloud_media_id``/``remember_upload``)
or hand its bytes to WAHA. A digits-only ``id`` is a Cloud API media id uploaded elsewhere and
passes as it is, on a Cloud API channel only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.outbound_kinds import MEDIA_KINDS, NotSendable, check, media_kind_of, readable_text
from models import Channel, CloudMediaUpload, MediaFile
from models.db import dialect_insert
from models.media import STORED
from settings import settings


@dataclass(frozen=True)
class Prepared:
    body: dict[str, Any]  # exactly as the client wrote it (checked)
    text: str  # what a person reads for it in the conversation
    media_file_id: int | None  # our file it sends by id, if any


def gateway_kind(session: Session, channel_id: int | None) -> str:
    """``cloud`` or ``waha``: what the channel sends through (the sandbox builds Cloud API bodies)."""
    if channel_id is not None:
        channel = session.get(Channel, channel_id)
        if channel is not None:
            return channel.kind
    return "waha" if settings.whatsapp_gateway.strip().lower() == "waha" else "cloud"


def prepare(session: Session, body: Any, gateway: str) -> Prepared:
    """The checked body, or NotSendable naming the field (and, for WAHA, the gateway)."""
    checked = check(body, gateway)
    kind = checked["type"]
    media_file_id = None
    if kind in MEDIA_KINDS and "id" in checked[kind]:
        media_file_id = _our_file(session, kind, str(checked[kind]["id"]), gateway)
    return Prepared(checked, readable_text(checked) or f"[{kind}]", media_file_id)


def _our_file(session: Session, kind: str, key: str, gateway: str) -> int | None:
    if key.isdigit() and gateway != "waha":
        return None  # a Cloud API media id: Meta knows it, we pass it on
    media = session.scalar(select(MediaFile).where(MediaFile.key == key))
    if media is None or media.state != STORED:
        raise NotSendable(f"{kind}.id", f"no stored media file {key!r}; upload it with POST /api/media")
    found = media_kind_of(media.mime_type or "")
    if found is None or found.kind != kind:
        sent_as = found.kind if found else "nothing WhatsApp sends"
        raise NotSendable(f"{kind}.id", f"the file is {media.mime_type}, which goes as {sent_as}, not {kind}")
    if media.size is not None and media.size > found.max_bytes:
        raise NotSendable(
            f"{kind}.id", f"the file is larger than {found.max_bytes} bytes, the most for {kind}"
        )
    return media.id


def channel_key(channel_id: int | None) -> str:
    return "settings" if channel_id is None else f"channel:{channel_id}"


def cloud_media_id(session: Session, media_file_id: int, channel_id: int | None) -> str | None:
    """The Cloud API media id this file was given when uploaded through this channel, if it was."""
    return session.scalar(
        select(CloudMediaUpload.cloud_media_id).where(
            CloudMediaUpload.media_file_id == media_file_id,
            CloudMediaUpload.channel_key == channel_key(channel_id),
        )
    )


def remember_upload(session: Session, media_file_id: int, channel_id: int | None, cloud_id: str) -> str:
    """Keep the id Meta gave the upload (a unique insert); returns the one kept, which is another
    worker's if it uploaded the same file through the same channel first."""
    insert = dialect_insert(session.get_bind().dialect.name)
    session.execute(
        insert(CloudMediaUpload)
        .values(media_file_id=media_file_id, channel_key=channel_key(channel_id), cloud_media_id=cloud_id)
        .on_conflict_do_nothing(index_elements=["media_file_id", "channel_key"])
    )
    return cloud_media_id(session, media_file_id, channel_id) or cloud_id


def with_media_id(body: dict[str, Any], cloud_id: str) -> dict[str, Any]:
    """The body with its media ``id`` replaced by the Cloud API's."""
    kind = body["type"]
    return {**body, kind: {**body[kind], "id": cloud_id}}
