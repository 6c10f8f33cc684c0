"""WAHA's JSON request body with our file as base64 ``file.data``, streamed: never the whole file,
nor its base64, in memory.

The body is written in three pieces: the JSON up to the opening quote of ``data`` (every other
field escaped by ``json.dumps``), the base64 of the store's chunks (whole 3-byte groups at a time,
so the pieces join into one valid base64 string), and the rest of the JSON. Its length is known
before it is read (4 * ceil(n / 3) base64 characters for an n-byte file), so ``requests`` sends it
with a Content-Length rather than chunked, which WAHA and any proxy in front of it accept.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

from integrations.storage import CHUNK_BYTES
from integrations.whatsapp.base import Attachment


def base64_length(size: int) -> int:
    """Characters of the padded base64 of ``size`` bytes."""
    return 4 * -(-size // 3)


class Base64Data:
    """``file.data`` in a request body before it is sent: the file it will stream from and how many
    base64 characters that makes (``len``), without reading the file."""

    def __init__(self, attachment: Attachment) -> None:
        self.attachment = attachment

    def __len__(self) -> int:
        return base64_length(self.attachment.size)


class StreamedBody:
    """A read-once file object over the JSON of ``body``, whose ``file.data`` is a ``Base64Data``.
    ``len`` is the bytes still to read (what requests asks for its Content-Length). Each send
    builds a new one: a retried or re-sent request re-opens the file from the store."""

    def __init__(self, body: dict[str, Any]) -> None:
        data: Base64Data = body["file"]["data"]
        marker = f"waha-data-{uuid.uuid4().hex}"  # a string no escaped field can contain
        text = json.dumps({**body, "file": {**body["file"], "data": marker}}, allow_nan=False)
        prefix, suffix = text.split(json.dumps(marker))
        self.len = len(prefix.encode()) + 2 + len(data) + len(suffix.encode())
        self._pieces = _pieces(prefix.encode() + b'"', data.attachment, b'"' + suffix.encode())
        self._piece, self._at = b"", 0  # the piece being read and how far: no copy of its tail
        # Why reading the store failed, if it did: urllib3 reports it as a dropped connection,
        # but WAHA got a body shorter than its Content-Length, so nothing can have been sent.
        self.store_error: Exception | None = None

    def read(self, size: int = -1) -> bytes:
        parts: list[bytes] = []
        wanted = self.len if size < 0 else min(size, self.len)
        while wanted > 0:
            if self._at >= len(self._piece):
                self._piece = b""  # dropped before the next is encoded: one piece in memory
                try:
                    self._piece, self._at = next(self._pieces, b""), 0
                except Exception as exc:  # OSError from the directory, botocore's from S3
                    self.store_error = exc
                    raise
                if not self._piece:
                    break
            part = self._piece[self._at : self._at + wanted]
            self._at += len(part)
            wanted -= len(part)
            parts.append(part)
        data = b"".join(parts)
        self.len -= len(data)
        return data


def _pieces(prefix: bytes, attachment: Attachment, suffix: bytes) -> Iterator[bytes]:
    yield prefix
    reader, left = attachment.open(), b""
    while chunk := reader.read(CHUNK_BYTES):
        left += chunk
        whole = len(left) - len(left) % 3
        if whole:
            yield base64.b64encode(left[:whole])
        left = left[whole:]
    if left:
        yield base64.b64encode(left)
    yield suffix
