"""Media files for the team: upload one to send (``POST /api/media``), or read one, inbound or
outbound (``GET /api/media/{id}``); and ``GET /f/{id}``, a file of ours opened by a signed,
expiring link (what a WAHA channel fetches, pipeline/media_links.py). The bytes stream from the
media store in chunks."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, File, HTTPException, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy import select

from api.auth import Caller
from api.permissions import conversation_in_reach
from domain.outbound_kinds import media_kind_of
from integrations.storage import media_store
from models import MediaFile, Message
from models.base import utcnow
from models.db import session_scope
from models.media import STORED
from pipeline import media_links
from pipeline.media import new_key
from settings import settings

router = APIRouter(prefix="/api", tags=["media"])  # who may call: api/permissions.py
public = APIRouter(tags=["media"])  # /f/{id}: the signature is the credential
CHUNK_BYTES = 256 * 1024
# Shown in the page itself; anything else (a customer's HTML "document") is only downloaded.
_INLINE = ("image/", "video/", "audio/")


class MediaOut(BaseModel):
    id: str
    mime_type: str
    size: int
    sha256: str


@router.post("/media", response_model=MediaOut, status_code=201)
async def upload_media(file: Annotated[UploadFile, File(description="the file to send")]) -> MediaOut:
    mime_type = (file.content_type or "").split(";")[0].strip().lower()
    kind = media_kind_of(mime_type)
    if kind is None:
        raise HTTPException(422, f"file: WhatsApp does not send {mime_type or 'files without a type'}")
    path, size, sha256 = await _spool(file, min(kind.max_bytes, settings.media_max_bytes))
    key = new_key()
    try:
        store = media_store(settings.media_store, settings.media_s3_endpoint_url)
        await run_in_threadpool(store.put, key, path, mime_type)
    finally:
        path.unlink(missing_ok=True)
    with session_scope() as session:
        session.add(
            MediaFile(
                key=key,
                source="upload",
                mime_type=mime_type,
                size=size,
                sha256=sha256,
                filename=(file.filename or None) and Path(file.filename).name[:255],
                state=STORED,
                stored_at=utcnow(),
            )
        )
    return MediaOut(id=key, mime_type=mime_type, size=size, sha256=sha256)


@router.get("/media/{media_id}", response_class=StreamingResponse)
def read_media(media_id: str, caller: Caller) -> StreamingResponse:
    with session_scope() as session:
        media = session.scalar(select(MediaFile).where(MediaFile.key == media_id))
        if media is None:
            raise HTTPException(404, "no such media file")
        if media.message_id is not None:
            # A customer's file is seen by the team of its conversation only.
            conversation_id = session.scalar(
                select(Message.conversation_id).where(Message.id == media.message_id)
            )
            try:
                conversation_in_reach(session, caller, conversation_id)
            except HTTPException:
                raise HTTPException(404, "no such media file") from None
        return _stream(media)


@public.get("/f/{media_id}", response_class=StreamingResponse)
def read_linked_media(
    media_id: str,
    expires: Annotated[int, Query()] = 0,
    signature: Annotated[str, Query(max_length=64)] = "",
) -> StreamingResponse:
    """A file opened by its signed link: no sign-in, and 404 (not 403) for a link that is not
    ours or has expired, so it tells nothing of which files exist."""
    if not media_links.allows(media_id, expires, signature):
        raise HTTPException(404, "no such media file")
    with session_scope() as session:
        media = session.scalar(select(MediaFile).where(MediaFile.key == media_id))
        if media is None:
            raise HTTPException(404, "no such media file")
        return _stream(media)


def _stream(media: MediaFile) -> StreamingResponse:
    """The stored file's bytes, chunk by chunk, with headers that keep a browser from running it."""
    media_id = media.key
    if media.state != STORED:
        raise HTTPException(404, f"media file {media.state}: not in the store")
    mime_type, filename, size = media.mime_type or "application/octet-stream", media.filename, media.size
    store = media_store(settings.media_store, settings.media_s3_endpoint_url)
    disposition = "inline" if mime_type.startswith(_INLINE) else "attachment"
    name = "".join(c for c in (filename or media_id) if c.isalnum() or c in "._- ")[:100] or media_id
    plain = name.encode("ascii", "ignore").decode() or media_id  # a header is Latin-1: RFC 6266's
    headers = {  # fallback name, and the real one (any script) percent-encoded in filename*
        "Content-Disposition": f"{disposition}; filename=\"{plain}\"; filename*=UTF-8''{quote(name)}",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
        "Cache-Control": "private, max-age=3600",
    }
    if size is not None:
        headers["Content-Length"] = str(size)
    return StreamingResponse(store.chunks(media_id), media_type=mime_type, headers=headers)


async def _spool(file: UploadFile, limit: int) -> tuple[Path, int, str]:
    """The upload in a temporary file, refused (413) as soon as it passes ``limit`` bytes."""
    digest, size = hashlib.sha256(), 0
    handle = tempfile.NamedTemporaryFile(prefix="upload-", delete=False)  # noqa: SIM115 - kept after close
    path = Path(handle.name)
    try:
        with handle:
            while chunk := await file.read(CHUNK_BYTES):
                size += len(chunk)
                if size > limit:
                    raise HTTPException(413, f"file: larger than {limit} bytes, the most WhatsApp takes")
                digest.update(chunk)
                handle.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if size == 0:
        path.unlink(missing_ok=True)
        raise HTTPException(422, "file: empty")
    return path, size, digest.hexdigest()
