"""The one interface every WhatsApp gateway implements, and how a send can fail.

The outbound worker hands a gateway an ``OutgoingMessage`` and whether the customer's 24-hour
window is open; the gateway picks text or template (where the window applies), makes one HTTP
call, and either returns ``Sent`` or raises one of the errors below. The class of the error is
the whole contract with the worker:

- ``TransientError``: nothing was delivered; sending again later is safe (connection refused,
  connect timeout, a 5xx other than 502/504, rate-limit codes). ``retry_after`` is the
  gateway's own hint, if any.
- ``BlockedWindow``: the window is closed and no template fits (or the gateway said 131047).
- ``PermanentError``: sending again as-is cannot succeed (invalid recipient, template missing).
  Its ``MediaRefused``: Meta cannot use the message's media id (expired): upload the file again.
- ``Unconfirmed``: the request may have reached the gateway but no answer came back (read
  timeout, connection dropped after sending, a proxy's 502 or 504). Sending again could deliver
  it twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class TemplateCall:
    """An approved Cloud API template and the values of its body parameters, in order."""

    name: str
    language: str
    parameters: list[str] = field(default_factory=list)


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class Attachment:
    """One of our stored files, for a gateway that must be handed the bytes (a Cloud API upload)
    or a link to them (WAHA's ``file.url``). ``open`` gives a file object that streams it from the
    store, ``size`` bytes long: no gateway holds the whole file in memory. ``url`` is where WAHA
    may fetch it (a signed, expiring public link), None when this install has none."""

    mime_type: str
    filename: str | None
    size: int
    open: Callable[[], Readable]
    url: str | None = None


@dataclass(frozen=True)
class OutgoingMessage:
    outbound_id: int  # our outbox row, echoed back by the Cloud API as biz_opaque_callback_data
    to: str  # E.164, "+6281212345678"
    text: str
    template: TemplateCall | None = None
    # A rich message (Cloud API message object without messaging_product/to), sent instead of text.
    body: dict[str, Any] | None = None
    # Our file the body sends by id, for a gateway that cannot take our id (WAHA).
    attachment: Attachment | None = None


@dataclass(frozen=True)
class Sent:
    external_id: str  # the gateway's message id (wamid), joined later with status webhooks
    type: str  # "text" or "template"
    request: dict[str, Any]  # the body that was sent, kept with the message
    # Sent, but not as it should have been (WAHA could not fetch our file's link): kept on the
    # outbox row for people to see and fix.
    warning: dict[str, Any] | None = None


class GatewayError(Exception):
    """A send that did not succeed; ``error`` is what the gateway said, kept for people to see."""

    def __init__(self, message: str, *, code: int | None = None, error: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.error = error or {"message": message, **({"code": code} if code is not None else {})}


class TransientError(GatewayError):
    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class PermanentError(GatewayError):
    pass


class BlockedWindow(PermanentError):
    pass


class MediaRefused(PermanentError):
    """Meta could not use the media id the message carries (131053, "media upload error"), as
    when an id uploaded more than 30 days ago has expired: uploading the file again may help."""


class Unconfirmed(GatewayError):
    pass


def digits(phone: str) -> str:
    """E.164 ``+6281212345678`` as the gateways want it: ``6281212345678``."""
    return "".join(ch for ch in phone if ch.isdigit())


class Gateway(Protocol):
    name: str

    def send(self, message: OutgoingMessage, *, window_open: bool) -> Sent: ...
