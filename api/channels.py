"""``/api/channels``: the WhatsApp numbers this install answers, each through one gateway.

Secrets (``access_token``, ``app_secret``, ``api_key``, ``hmac_key``) are write-only: stored
encrypted (SECRET_KEY), never returned, never logged. The settings channel (``WHATSAPP_*``,
``WAHA_*``) is listed first, with ``id`` null; it cannot be changed here.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from api.auth import Caller
from models import Channel
from models.channels import SECRETS, note_change
from models.db import session_scope
from pipeline import audit as audit_trail
from pipeline import channels
from pipeline.channels import ChannelError

log = logging.getLogger(__name__)
# Every write-only field, whatever the kind: kept out of the audit log.
SECRET_FIELDS = frozenset(field for fields in SECRETS.values() for field in fields)
router = APIRouter(prefix="/api", tags=["channels"])  # who may call: api/permissions.py

Text64 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class ChannelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text64
    kind: Literal["cloud", "waha"]
    display_phone: Annotated[str, StringConstraints(max_length=32)] | None = None
    team: Text64 | None = None
    default: bool = False
    enabled: bool = True
    phone_agent: Text64 | None = None  # whose are the replies typed on this number's phone
    # cloud
    phone_number_id: Text64 | None = None
    waba_id: Text64 | None = None
    access_token: Secret | None = Field(default=None, repr=False)
    app_secret: Secret | None = Field(default=None, repr=False)
    # waha
    waha_url: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=1000)] | None = None
    session: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    api_key: Secret | None = Field(default=None, repr=False)
    hmac_key: Secret | None = Field(default=None, repr=False)


class ChannelPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool | None = None
    team: Text64 | None = None
    default: bool | None = None
    phone_agent: Text64 | None = None
    display_phone: Annotated[str, StringConstraints(max_length=32)] | None = None
    waha_url: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=1000)] | None = None
    access_token: Secret | None = Field(default=None, repr=False)
    app_secret: Secret | None = Field(default=None, repr=False)
    api_key: Secret | None = Field(default=None, repr=False)
    hmac_key: Secret | None = Field(default=None, repr=False)


class ChannelOut(BaseModel):
    id: int | None  # None: the settings channel
    name: str
    kind: str
    phone_number_id: str | None = None
    waba_id: str | None = None
    session: str | None = None
    waha_url: str | None = None
    display_phone: str | None
    team: str | None
    default: bool
    enabled: bool
    phone_agent: str | None = None
    from_settings: bool = False


@router.get("/channels", response_model=list[ChannelOut], response_model_exclude_none=False)
def list_channels() -> list[dict[str, Any]]:
    """Every channel, the settings channel first; never a secret."""
    with session_scope() as session:
        return channels.listing(session)


def _validated(model: type[BaseModel], body: Any) -> BaseModel:
    """The body as ``model``, or 422 naming the field, without echoing what was sent (FastAPI's
    own validation error would repeat the value, a secret among them)."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "body"
        raise HTTPException(422, f"{field}: {error['msg']}") from None


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


@router.post("/channels", response_model=ChannelOut, status_code=201, openapi_extra=_schema(ChannelIn))
def add_channel(raw: Annotated[Any, Body()], caller: Caller) -> dict[str, Any]:
    """Add a number; 409 when its phone_number_id or session (or its name) is a channel already."""
    body = _validated(ChannelIn, raw)
    with session_scope() as session:
        try:
            channel = channels.create(session, body.model_dump())
        except ChannelError as exc:
            raise HTTPException(exc.status, str(exc)) from None
        shown = channels.public(channel)
        audit_trail.record(session, caller.login, "channel.added", f"channel:{channel.id}", _unsecret(shown))
    _changed("channel added", shown)
    return shown


@router.patch("/channels/{channel_id}", response_model=ChannelOut, openapi_extra=_schema(ChannelPatch))
def change_channel(channel_id: int, raw: Annotated[Any, Body()], caller: Caller) -> dict[str, Any]:
    """Change any of ``enabled``, ``team``, ``default``, ``display_phone``, ``waha_url`` and the
    secrets (a secret left out is kept)."""
    body = _validated(ChannelPatch, raw)
    with session_scope() as session:
        channel = session.get(Channel, channel_id, with_for_update=True)
        if channel is None:
            raise HTTPException(404, f"no channel {channel_id}")
        try:
            changes = body.model_dump(exclude_unset=True)
            channels.change(session, channel, changes)
        except ChannelError as exc:
            raise HTTPException(exc.status, str(exc)) from None
        shown = channels.public(channel)
        # Which fields changed; a secret's value never reaches the audit log.
        changed = {key: ("(secret)" if key in SECRET_FIELDS else value) for key, value in changes.items()}
        audit_trail.record(session, caller.login, "channel.changed", f"channel:{channel.id}", changed)
    _changed("channel changed", shown)
    return shown


def _unsecret(shown: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in shown.items() if key not in SECRET_FIELDS}


def _changed(what: str, shown: dict[str, Any]) -> None:
    note_change()  # this process's webhooks read the channels again at their next request
    log.info(what, extra={"channel": shown["name"], "channel_id": shown["id"]})
