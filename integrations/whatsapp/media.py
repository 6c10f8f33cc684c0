"""Fetching a customer's media file from the gateway, streamed to a temporary file and checked.

Cloud API (docs/formats.md "Media"): ``GET /{media-id}`` with the access token answers a
short-lived ``url`` with ``mime_type``, ``sha256`` and ``file_size``; the bytes come from that URL
with the same token. WAHA: the message carries a ``media.url`` on the WAHA server, fetched with
the API key. A URL is fetched only from the gateway's own host or the configured Meta media
hosts (no request to an address a forged payload names), with a size cap and a timeout; the
declared size and sha256 are checked before the file is kept.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests
import urllib3

from integrations.whatsapp.base import PermanentError, TransientError
from integrations.whatsapp.http import CONNECT_TIMEOUT_SECONDS, network_error

CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class Fetched:
    path: Path  # a temporary file: the caller stores it, then deletes it
    mime_type: str
    size: int
    sha256: str


@dataclass(frozen=True)
class MediaSource:
    """How to reach one gateway's media: its base URL, credentials, and the hosts allowed."""

    gateway: str  # cloud | waha
    base_url: str
    headers: dict[str, str]
    allowed_hosts: frozenset[str]
    max_bytes: int
    timeout: float


def fetch_cloud(source: MediaSource, media_id: str) -> Fetched:
    info = _get(source, f"{source.base_url.rstrip('/')}/{media_id}", stream=False)
    try:
        meta = info.json()
        url = str(meta["url"])
    except (ValueError, KeyError, TypeError) as exc:
        raise PermanentError(f"cloud: media {media_id} has no url", error={"message": str(exc)}) from exc
    declared = meta.get("file_size")
    if isinstance(declared, int) and declared > source.max_bytes:
        raise PermanentError(f"cloud: media {media_id} is {declared} bytes, above MEDIA_MAX_BYTES")
    fetched = _download(source, url, meta.get("mime_type"))
    expected = str(meta.get("sha256") or "").lower()
    if expected and expected != fetched.sha256:
        fetched.path.unlink(missing_ok=True)
        raise PermanentError(f"cloud: media {media_id} does not match its sha256")
    if isinstance(declared, int) and declared != fetched.size:
        fetched.path.unlink(missing_ok=True)
        raise PermanentError(f"cloud: media {media_id} is {fetched.size} bytes, {declared} declared")
    return fetched


def fetch_waha(source: MediaSource, url: str, mime_type: str | None) -> Fetched:
    return _download(source, url, mime_type)


def _download(source: MediaSource, url: str, declared_type: str | None) -> Fetched:
    """Stream ``url`` to a temporary file; its type as declared, else as the answer says."""
    answer = _get(source, url, stream=True)
    mime_type = str(declared_type or answer.headers.get("content-type") or "")
    digest, size = hashlib.sha256(), 0
    handle = tempfile.NamedTemporaryFile(prefix="media-", delete=False)  # noqa: SIM115 - kept after close
    path = Path(handle.name)
    try:
        with handle, answer:
            # Read here, not through iter_content: its generator keeps the last chunk while it
            # reads the next, so two chunks would be in memory at once; here one is dropped first.
            while chunk := answer.raw.read(CHUNK_BYTES, decode_content=True):
                size += len(chunk)
                if size > source.max_bytes:
                    raise PermanentError(
                        f"{source.gateway}: media is above MEDIA_MAX_BYTES ({source.max_bytes})"
                    )
                digest.update(chunk)
                handle.write(chunk)
                del chunk
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        path.unlink(missing_ok=True)
        raise TransientError(f"{source.gateway}: media download broke off: {type(exc).__name__}") from exc
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Fetched(
        path, mime_type.split(";")[0].strip() or "application/octet-stream", size, digest.hexdigest()
    )


def _get(source: MediaSource, url: str, *, stream: bool) -> requests.Response:
    host = urlsplit(url).hostname or ""
    if urlsplit(url).scheme not in ("http", "https") or host not in source.allowed_hosts:
        raise PermanentError(f"{source.gateway}: media URL host {host!r} is not a gateway host; not fetched")
    try:
        answer = requests.get(
            url,
            headers=source.headers,
            timeout=(CONNECT_TIMEOUT_SECONDS, source.timeout),
            stream=stream,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        error = network_error(exc, source.gateway)
        # A download changes nothing at the gateway: trying again is always safe.
        raise TransientError(str(error), error=error.error) from exc
    if answer.status_code == 429 or answer.status_code >= 500:
        answer.close()
        raise TransientError(f"{source.gateway}: media answered {answer.status_code}")
    if answer.status_code != 200:
        answer.close()
        raise PermanentError(f"{source.gateway}: media answered {answer.status_code}")
    return answer
