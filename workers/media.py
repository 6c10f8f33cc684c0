"""Fetching inbound media files into the media store (pipeline/media.py says how)."""

from __future__ import annotations

import logging

from integrations.storage import media_store
from integrations.whatsapp.base import GatewayError, PermanentError
from models.db import session_scope
from pipeline import media
from queueing import names
from queueing.publish import download_media as publish_download
from queueing.tasks import event_task
from settings import settings

log = logging.getLogger(__name__)


@event_task(names.DOWNLOAD_MEDIA)
def download_media(media_id: int) -> str:
    with session_scope() as session:
        row = media.claim(session, media_id)
        if row is None:
            return "skipped"
        download = media.Download.of(session, row)
    try:
        fetched = download.fetch()  # outside any transaction: a 16 MB video holds no lock
    except GatewayError as exc:
        with session_scope() as session:
            delay = media.failed(session, media_id, str(exc), permanent=isinstance(exc, PermanentError))
        if delay is not None:
            publish_download([media_id], countdown=delay)
            return "retrying"
        log.warning("media not fetched", extra={"media_id": media_id, "error": str(exc)})
        return "failed"
    try:
        store = media_store(settings.media_store, settings.media_s3_endpoint_url)
        store.put(download.key, fetched.path, fetched.mime_type)
    finally:
        fetched.path.unlink(missing_ok=True)
    with session_scope() as session:
        media.stored(session, media_id, mime_type=fetched.mime_type, size=fetched.size, sha256=fetched.sha256)
    return "stored"
