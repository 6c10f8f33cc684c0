"""Where media files are kept: a local directory (the embedded default) or an S3-compatible bucket.

Files arrive as a finished temporary file (downloaded, size- and hash-checked) and leave as a
stream of chunks, so no file is ever held whole in memory. Keys are ours (random, unguessable),
never a customer's file name.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

CHUNK_BYTES = 256 * 1024


class MediaStore(Protocol):
    def put(self, key: str, path: Path, mime_type: str) -> None: ...

    def chunks(self, key: str) -> Iterator[bytes]: ...

    def exists(self, key: str) -> bool: ...


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / key

    def put(self, key: str, path: Path, mime_type: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        staged = target.with_suffix(".part")
        shutil.copyfile(path, staged)
        os.replace(staged, target)  # a reader sees the whole file or none

    def chunks(self, key: str) -> Iterator[bytes]:
        with self._path(key).open("rb") as source:
            while chunk := source.read(CHUNK_BYTES):
                yield chunk
                del chunk  # not kept while the next is read: one chunk in memory, not two

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


class S3Store:
    """Any S3-compatible store through boto3 (multipart uploads, streamed reads)."""

    def __init__(self, url: str, endpoint_url: str | None) -> None:
        import boto3  # only installs that keep media in S3 load it

        parts = urlsplit(url)
        self.bucket, self.prefix = parts.netloc, parts.path.strip("/")
        self.client = boto3.client("s3", endpoint_url=endpoint_url)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, path: Path, mime_type: str) -> None:
        self.client.upload_file(str(path), self.bucket, self._key(key), ExtraArgs={"ContentType": mime_type})

    def chunks(self, key: str) -> Iterator[bytes]:
        body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        yield from body.iter_chunks(CHUNK_BYTES)

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError:
            return False
        return True


class ChunkReader:
    """A stored file as a read-only file object over its chunks, for an HTTP client that streams
    a request body from ``read`` (a multipart upload): one chunk in memory at a time. ``len`` is
    the bytes still to read, which requests-toolbelt's encoder asks for its Content-Length."""

    def __init__(self, chunks: Iterator[bytes], size: int) -> None:
        self._chunks = chunks
        self._chunk, self._at = b"", 0  # the chunk being read and how far: no copy of its tail
        self.len = size

    def read(self, size: int = -1) -> bytes:
        parts: list[bytes] = []
        wanted = self.len if size < 0 else min(size, self.len)
        while wanted > 0:
            if self._at >= len(self._chunk):
                self._chunk = b""  # dropped before the next is read: one chunk in memory, not two
                self._chunk, self._at = next(self._chunks, b""), 0
                if not self._chunk:  # else the encoder would wait for the missing bytes forever
                    raise OSError(f"the stored file ended {wanted} bytes short of its recorded size")
            part = self._chunk[self._at : self._at + wanted]
            self._at += len(part)
            wanted -= len(part)
            parts.append(part)
        data = b"".join(parts)
        self.len = max(0, self.len - len(data))
        return data


def media_store(location: str, s3_endpoint_url: str | None = None) -> MediaStore:
    """The store MEDIA_STORE names: ``s3://bucket/prefix``, else a directory path."""
    if location.startswith("s3://"):
        return S3Store(location, s3_endpoint_url)
    return LocalStore(Path(location))
