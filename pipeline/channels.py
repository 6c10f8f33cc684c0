"""Channels as the pipeline and the API see them: which number a conversation is with, whose team
answers it, which channel an order or a broadcast goes out through, and adding or changing one.

The team of a conversation is its channel's team: ``pipeline.teams.conversation_team`` says it.

A ``channel_id`` of None is the settings channel (models/channels.py): the ``WHATSAPP_*`` and
``WAHA_*`` settings, the default unless a stored channel is marked default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from integrations.whatsapp import CloudApiGateway, Gateway, WahaGateway
from models import Agent, Channel, Conversation
from models.base import utcnow
from models.channels import CLOUD, KINDS, SECRETS, SETTINGS_CHANNEL, WAHA
from models.secret_box import SecretKeyMissing, decrypt, encrypt
from settings import Settings, settings


def same(column: Any, channel_id: int | None) -> ColumnElement[bool]:
    """``column`` names this channel (None, the settings channel, is NULL)."""
    return column.is_(None) if channel_id is None else column == channel_id


def conversation_channel_id(session: Session, conversation_id: int) -> int | None:
    return session.scalar(select(Conversation.channel_id).where(Conversation.id == conversation_id))


def default_channel_id(session: Session) -> int | None:
    """The stored channel marked default, else None: the settings channel."""
    return session.scalar(select(Channel.id).where(Channel.is_default))


def id_of(session: Session, name: str | None) -> int | None:
    """The channel an order event names (None: the default). Names are checked by the producer;
    one that has gone since goes out through the default."""
    if name == SETTINGS_CHANNEL:
        return None
    if name:
        found = session.scalar(select(Channel.id).where(Channel.name == name))
        if found is not None:
            return found
    return default_channel_id(session)


def names(session: Session) -> dict[int | None, str]:
    """Every channel's name by id, the settings channel's under None (for API output)."""
    found: dict[int | None, str] = {None: SETTINGS_CHANNEL}
    found.update((row.id, row.name) for row in session.execute(select(Channel.id, Channel.name)))
    return found


def gateway_of(channel: Channel, config: Settings = settings) -> Gateway:
    """The gateway client that sends through a stored channel, with its decrypted credentials."""
    if channel.kind == CLOUD:
        token = decrypt(channel.access_token_secret)
        if not token or not channel.phone_number_id:
            raise ValueError(f"channel {channel.name!r} has no access_token or phone_number_id")
        return CloudApiGateway(
            config.whatsapp_api_base, token, channel.phone_number_id, config.outbound_timeout_seconds
        )
    if not channel.waha_url:
        raise ValueError(f"channel {channel.name!r} has no waha_url")
    return WahaGateway(
        channel.waha_url, decrypt(channel.api_key_secret), channel.session, config.outbound_timeout_seconds
    )


# Managing channels (the API and the CLI).


@dataclass
class ChannelError(Exception):
    """A refused change: the HTTP status the API answers, the field at fault, and why."""

    status: int
    field: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


_REQUIRED = {
    CLOUD: ("phone_number_id", "access_token", "app_secret"),
    WAHA: ("waha_url", "session", "hmac_key"),
}
_OTHER_KIND_FIELDS = {
    CLOUD: ("waha_url", "session", "api_key", "hmac_key"),
    WAHA: ("phone_number_id", "waba_id", "access_token", "app_secret"),
}


def create(session: Session, data: dict[str, Any]) -> Channel:
    """Add a channel from the API's fields; ``ChannelError`` (nothing stored) when refused."""
    kind = data.get("kind")
    if kind not in KINDS:
        raise ChannelError(422, "kind", f"must be one of {', '.join(KINDS)}")
    name = (data.get("name") or "").strip()
    if not name:
        raise ChannelError(422, "name", "is required")
    if name == SETTINGS_CHANNEL:
        raise ChannelError(422, "name", f"{SETTINGS_CHANNEL!r} is the settings channel's name")
    for field in _REQUIRED[kind]:
        if not data.get(field):
            raise ChannelError(422, field, f"is required for a {kind} channel")
    for field in _OTHER_KIND_FIELDS[kind]:
        if data.get(field):
            raise ChannelError(422, field, f"does not belong to a {kind} channel")
    if session.scalar(select(Channel.id).where(Channel.name == name)):
        raise ChannelError(409, "name", f"a channel named {name!r} exists already")
    key = "phone_number_id" if kind == CLOUD else "session"
    if session.scalar(select(Channel.id).where(getattr(Channel, key) == data[key])):
        raise ChannelError(409, key, f"{data[key]!r} is already a channel")
    channel = Channel(
        name=name,
        kind=kind,
        display_phone=data.get("display_phone"),
        team=data.get("team") or None,
        enabled=data.get("enabled", True) is not False,
        is_default=False,
        phone_number_id=data.get("phone_number_id"),
        waba_id=data.get("waba_id"),
        waha_url=data.get("waha_url"),
        session=data.get("session"),
        phone_agent=_phone_agent(session, data.get("phone_agent")),
    )
    _set_secrets(channel, data)
    if data.get("default"):
        _clear_default(session)
        channel.is_default = True
    session.add(channel)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:  # a concurrent add of the same number
        raise ChannelError(409, key, f"{data[key]!r} is already a channel") from exc
    return channel


def change(session: Session, channel: Channel, changes: dict[str, Any]) -> Channel:
    """Apply ``enabled``, ``team``, ``default``, ``display_phone``, ``waha_url`` and the secrets."""
    for field in _OTHER_KIND_FIELDS[channel.kind]:
        if changes.get(field) is not None:
            raise ChannelError(422, field, f"does not belong to a {channel.kind} channel")
    default = changes.get("default")
    enabled = changes.get("enabled")
    if enabled is False and (default or (channel.is_default and default is not False)):
        raise ChannelError(
            422, "enabled", "the default channel cannot be disabled; make another one the default first"
        )
    _set_secrets(channel, changes)
    if "team" in changes:
        channel.team = changes["team"] or None
    if "phone_agent" in changes:
        channel.phone_agent = _phone_agent(session, changes["phone_agent"])
    for field in ("display_phone", "waha_url"):
        if changes.get(field) is not None:
            setattr(channel, field, changes[field])
    if enabled is not None:
        channel.enabled = enabled
    if default is True and not channel.is_default:
        _clear_default(session)
        channel.is_default = True
    elif default is False:
        channel.is_default = False  # the settings channel is the default again
    channel.updated_at = utcnow()
    session.flush()
    return channel


def _set_secrets(channel: Channel, data: dict[str, Any]) -> None:
    for field, column in SECRETS[channel.kind].items():
        value = data.get(field)
        if value:
            try:
                setattr(channel, column, encrypt(value))
            except SecretKeyMissing as exc:
                raise ChannelError(503, None, str(exc)) from exc


def _phone_agent(session: Session, login: str | None) -> str | None:
    """The agent whose replies typed on the number's phone are (docs/echoes.md); an account."""
    if login and not session.scalar(select(Agent.id).where(Agent.login == login)):
        raise ChannelError(422, "phone_agent", f"no agent {login!r}")
    return login or None


def _clear_default(session: Session) -> None:
    session.execute(update(Channel).where(Channel.is_default).values(is_default=False))
    session.flush()


def public(channel: Channel) -> dict[str, Any]:
    """What the API and the CLI show of a channel: everything but its secrets."""
    shown: dict[str, Any] = {
        "id": channel.id,
        "name": channel.name,
        "kind": channel.kind,
        "display_phone": channel.display_phone,
        "team": channel.team,
        "default": channel.is_default,
        "enabled": channel.enabled,
        "phone_agent": channel.phone_agent,
    }
    if channel.kind == CLOUD:
        shown.update(phone_number_id=channel.phone_number_id, waba_id=channel.waba_id)
    else:
        shown.update(session=channel.session, waha_url=channel.waha_url)
    return shown


def settings_public(session: Session, config: Settings = settings) -> dict[str, Any]:
    """The settings channel, as ``public`` shows a stored one (``id`` None)."""
    kind = config.whatsapp_gateway.strip().lower()
    shown: dict[str, Any] = {
        "id": None,
        "name": SETTINGS_CHANNEL,
        "kind": kind,
        "display_phone": None,
        "team": None,
        "default": default_channel_id(session) is None,
        "enabled": True,
        "from_settings": True,
    }
    if kind == WAHA:
        shown["session"] = config.waha_session or "default"
    else:
        shown["phone_number_id"] = config.whatsapp_phone_number_id
    return shown


def listing(session: Session) -> list[dict[str, Any]]:
    stored = session.scalars(select(Channel).order_by(Channel.id)).all()
    return [settings_public(session), *(public(channel) for channel in stored)]
