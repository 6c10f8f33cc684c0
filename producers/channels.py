"""Which channel a webhook is for, and with which secret it must be signed.

While no channel of a kind is stored, that kind's webhook behaves exactly as it did with one
number: the settings channel takes every request, signed with ``WHATSAPP_APP_SECRET`` (Cloud
API) or ``WAHA_HMAC_KEY`` (WAHA). Once channels of the kind are stored, each event is routed by
its Cloud API ``metadata.phone_number_id`` or its WAHA ``session``:

- a stored channel: signed with that channel's app secret or HMAC key; a disabled one's events
  are kept as ``unknown_channel``;
- the settings channel, when the number is ``WHATSAPP_PHONE_NUMBER_ID`` or the session is
  ``WAHA_SESSION`` (``default`` when unset): signed with the setting's secret;
- anything else: kept as ``unknown_channel`` (acknowledged, so the sender does not retry for
  days), when signed with any secret we know of that kind; never processed.

The stored channels are read at most every ``CACHE_SECONDS`` (a change through this process's
API is seen at once, one through another process or the CLI within that time).

"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select

from models import Channel
from models.channels import CLOUD, SETTINGS_CHANNEL, WAHA, changes
from models.db import session_scope
from models.secret_box import SecretKeyMissing, SecretUnreadable, decrypt
from producers.rejections import Rejected
from producers.security import not_configured, signature_matches
from settings import Settings

log = logging.getLogger(__name__)

CACHE_SECONDS = 2.0


@dataclass(frozen=True)
class Route:
    """Where one event goes: ``channel_id`` (None: the settings channel) if ``accepted``, else it
    is kept as unknown_channel. ``secret`` is what it must be signed with (None: not set), named
    ``setting`` in errors."""

    channel_id: int | None
    accepted: bool
    secret: str | None
    setting: str
    known: bool = True


UNKNOWN = Route(None, False, None, "", known=False)


@dataclass(frozen=True)
class Known:
    """The stored channels as the producers need them."""

    by_phone_number_id: dict[str, Route] = field(default_factory=dict)
    by_session: dict[str, Route] = field(default_factory=dict)
    names: frozenset[str] = frozenset()
    loaded_at: float = 0.0
    generation: int = -1


_lock = threading.Lock()
_known = Known()


async def known() -> Known:
    """The stored channels, read again when older than CACHE_SECONDS or changed in this process."""
    current = _known
    if current.generation == changes() and time.monotonic() - current.loaded_at < CACHE_SECONDS:
        return current
    return await run_in_threadpool(_load)


def _load() -> Known:
    global _known
    generation = changes()
    with session_scope() as session:
        rows = session.scalars(select(Channel)).all()
        by_phone, by_session = {}, {}
        for channel in rows:
            if channel.kind == CLOUD and channel.phone_number_id:
                secret = _readable(channel, channel.app_secret_secret)
                by_phone[channel.phone_number_id] = Route(
                    channel.id, channel.enabled, secret, f"the app secret of channel {channel.name!r}"
                )
            elif channel.kind == WAHA and channel.session:
                secret = _readable(channel, channel.hmac_key_secret)
                by_session[channel.session] = Route(
                    channel.id, channel.enabled, secret, f"the HMAC key of channel {channel.name!r}"
                )
        names = frozenset(channel.name for channel in rows)
    loaded = Known(by_phone, by_session, names, time.monotonic(), generation)
    with _lock:
        _known = loaded
    return loaded


def _readable(channel: Channel, token: str | None) -> str | None:
    try:
        return decrypt(token)
    except (SecretKeyMissing, SecretUnreadable):
        log.error("a channel's secret cannot be read: set SECRET_KEY", extra={"channel": channel.name})
        return None


def cloud_route(known: Known, phone_number_id: object, config: Settings) -> Route:
    found = known.by_phone_number_id.get(phone_number_id) if isinstance(phone_number_id, str) else None
    if found is not None:
        return found
    if phone_number_id and phone_number_id == config.whatsapp_phone_number_id:
        return Route(None, True, config.whatsapp_app_secret, "WHATSAPP_APP_SECRET")
    return UNKNOWN


def waha_route(known: Known, session: object, config: Settings) -> Route:
    found = known.by_session.get(session) if isinstance(session, str) else None
    if found is not None:
        return found
    if session == (config.waha_session or "default"):
        return Route(None, True, config.waha_hmac_key, "WAHA_HMAC_KEY")
    return UNKNOWN


def verify(
    routes: Iterable[Route],
    every_secret: Iterable[str | None],
    body: bytes,
    header_value: str | None,
    *,
    header: str,
    development_mode: bool,
    algorithm: str = "sha256",
) -> None:
    """The request must be signed with the secret of every channel it addresses (a request
    signed for channel A but addressed to channel B is refused 401). One for no channel we know
    (unknown_channel only) must be signed with any secret we know of its kind."""
    addressed = {route.setting: route.secret for route in routes if route.known}
    if not addressed:
        secrets = [secret for secret in every_secret if secret]
        if not secrets:
            if development_mode:
                return
            raise not_configured("a channel secret")
        if not header_value:
            raise Rejected(401, f"missing {header} header", field=header, reason="signature")
        if not any(signature_matches(secret, body, header_value, algorithm) for secret in secrets):
            raise Rejected(401, f"{header} does not match the body", field=header, reason="signature")
        return
    for setting, secret in addressed.items():
        if not secret:
            if development_mode:
                continue
            raise not_configured(setting if setting.isupper() else f"SECRET_KEY ({setting})")
        if not header_value:
            raise Rejected(401, f"missing {header} header", field=header, reason="signature")
        if not signature_matches(secret, body, header_value, algorithm):
            raise Rejected(
                401, f"{header} does not match the body for {setting}", field=header, reason="signature"
            )


def is_channel_name(known: Known, name: str) -> bool:
    return name == SETTINGS_CHANNEL or name in known.names
