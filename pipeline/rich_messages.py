"""One message model for every sender: a rich message checked and made ready for the outbox.

Agents, automation, broadcasts and the end response all hand over a Cloud API message object
without ``messaging_product``/``to`` (docs/rich-messages.md). ``prepare`` checks it against
WhatsApp's limits for the channel's gateway (domain/outbound_kinds.py) and resolves a media
``id`` that is one of our files (POST /api/media), in a media message, an interactive header or
a template's header parameter, to its ``media_files`` row, so the outbound
worker can upload it to the Cloud API once per channel (``claim_upload``/``uploaded``)
or hand its bytes to WAHA. A digits-only ``id`` is a Cloud API media id uploaded elsewhere and
passes as it is, on a Cloud API channel only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from domain.outbound_kinds import (
    NotSendable,
    check,
    media_at,
    media_kind_of,
    media_slot,
    readable_text,
    with_media_at,
)
from models import Channel, CloudMediaUpload, MediaFile
from models.base import utcnow
from models.db import dialect_insert
from models.media import STORED
from settings import settings

# How long a worker holds a file's upload before another may take it over (a dead worker's).
_HOLD = timedelta(seconds=120)
# Meta forgets an uploaded media id after 30 days (formats-rich.md 2.3): one older than this is
# uploaded again before it is used, a day early so that no send meets it expiring on the way.
MAX_AGE = timedelta(days=29)


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
    # A media message's file, an interactive header's or a template header's: the same rules.
    slot = media_slot(checked)
    if slot is not None and "id" in media_at(checked, slot):
        media_file_id = _our_file(session, slot.kind, slot.field, str(media_at(checked, slot)["id"]), gateway)
    return Prepared(checked, readable_text(checked) or f"[{kind}]", media_file_id)


def _our_file(session: Session, kind: str, field: str, key: str, gateway: str) -> int | None:
    if key.isdigit() and gateway != "waha":
        return None  # a Cloud API media id: Meta knows it, we pass it on
    media = session.scalar(select(MediaFile).where(MediaFile.key == key))
    if media is None or media.state != STORED:
        raise NotSendable(f"{field}.id", f"no stored media file {key!r}; upload it with POST /api/media")
    found = media_kind_of(media.mime_type or "")
    if found is None or found.kind != kind:
        sent_as = found.kind if found else "nothing WhatsApp sends"
        raise NotSendable(
            f"{field}.id", f"the file is {media.mime_type}, which goes as {sent_as}, not {kind}"
        )
    if media.size is not None and media.size > found.max_bytes:
        raise NotSendable(
            f"{field}.id", f"the file is larger than {found.max_bytes} bytes, the most for {kind}"
        )
    return media.id


def channel_key(channel_id: int | None) -> str:
    return "settings" if channel_id is None else f"channel:{channel_id}"


@dataclass(frozen=True)
class Upload:
    cloud_id: str | None  # Meta's id for the file, when it has been uploaded through this channel
    ours: bool  # no id yet and this worker is to upload it (else another one is: wait)


def claim_upload(session: Session, media_file_id: int, channel_id: int | None) -> Upload:
    """The Cloud API media id of this file on this channel, or the right to upload it: the first
    worker's unique insert takes it; a hold that ran out (its worker died) is taken over."""
    now, key = utcnow(), channel_key(channel_id)
    insert = dialect_insert(session.get_bind().dialect.name)
    made = session.scalar(
        insert(CloudMediaUpload)
        .values(media_file_id=media_file_id, channel_key=key, claimed_until=now + _HOLD)
        .on_conflict_do_nothing(index_elements=["media_file_id", "channel_key"])
        .returning(CloudMediaUpload.id)
    )
    if made is not None:
        return Upload(None, True)
    row = session.scalars(
        select(CloudMediaUpload)
        .where(CloudMediaUpload.media_file_id == media_file_id, CloudMediaUpload.channel_key == key)
        .with_for_update()
    ).one()
    fresh = row.uploaded_at is None or row.uploaded_at >= now - MAX_AGE
    if row.cloud_media_id and fresh:
        return Upload(row.cloud_media_id, False)
    # Never uploaded, its upload failed, or Meta has forgotten it by now: upload (again).
    if row.claimed_until is None or row.claimed_until < now:
        row.claimed_until = now + _HOLD
        return Upload(None, True)
    return Upload(None, False)


def uploaded(session: Session, media_file_id: int, channel_id: int | None, cloud_id: str | None) -> None:
    """Record the id Meta gave our upload; None: it failed, and the next send may try at once."""
    row = session.scalars(
        select(CloudMediaUpload)
        .where(
            CloudMediaUpload.media_file_id == media_file_id,
            CloudMediaUpload.channel_key == channel_key(channel_id),
        )
        .with_for_update()
    ).one()
    row.cloud_media_id, row.claimed_until = cloud_id, None
    row.uploaded_at = utcnow() if cloud_id else None


def forget(session: Session, media_file_id: int, channel_id: int | None, cloud_id: str) -> None:
    """Meta refused ``cloud_id`` as expired: the next send of the file uploads it again (unless
    another send already did, and the row holds a newer id)."""
    session.execute(
        update(CloudMediaUpload)
        .where(
            CloudMediaUpload.media_file_id == media_file_id,
            CloudMediaUpload.channel_key == channel_key(channel_id),
            CloudMediaUpload.cloud_media_id == cloud_id,
        )
        .values(cloud_media_id=None, uploaded_at=None, claimed_until=None)
    )


def with_media_id(body: dict[str, Any], cloud_id: str) -> dict[str, Any]:
    """The body with its media ``id`` (a media message's, an interactive or template header's)
    replaced by the Cloud API's."""
    slot = media_slot(body)
    assert slot is not None, "a row with a media file carries a media object"
    return with_media_at(body, slot, {**media_at(body, slot), "id": cloud_id})
