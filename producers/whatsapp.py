"""``/webhooks/whatsapp``: the Meta Cloud API webhook (verification handshake, messages, statuses).

Every message and every status of a (possibly batched) payload becomes one inbox event, keyed by
the wamid (messages) or by wamid and status (receipts: Meta sends each once per status). The
``smb_message_echoes`` field (a number shared with the WhatsApp Business app) carries what staff
typed in the app: each echo is an ``echo`` event, keyed by its wamid (docs/echoes.md).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models import Contact, ContactIdentity, DeliveryStatus, InboxEvent, Message
from models.inbox import PENDING, UNKNOWN_CHANNEL
from models.types import room
from producers import channels
from producers.channels import Route
from producers.inbox import NewEvent, store
from producers.rejections import Rejected
from producers.security import not_configured, parse_json, read_body, verify_signature
from settings import Settings

log = logging.getLogger(__name__)
router = APIRouter(tags=["webhooks"])

# Up to 11 digits keeps every value a valid datetime (year 5138 at most).
EpochSeconds = Annotated[str, Field(pattern=r"^\d{1,11}$")]

# What the columns a value lands in hold, so that an accepted event can always be stored.
MESSAGE_ID = min(room(Message.external_id), room(InboxEvent.dedupe_key))
STATUS = room(DeliveryStatus.status)
# A receipt is keyed "<wamid>:<status>" in the inbox, and its wamid kept as the message's.
STATUS_ID = min(
    room(DeliveryStatus.external_id), room(Message.external_id), room(InboxEvent.dedupe_key) - 1 - STATUS
)
IDENTITY = room(ContactIdentity.value)  # a wa_id or a BSUID
NAME = room(Contact.name)
TYPE = room(Message.raw_type)  # a type we do not know is kept under its own name
LEAD_SOURCE = room(Contact.lead_source)  # "<referral source_type>:<source_id>"


class _Open(BaseModel):
    # Meta adds fields often; unknown ones are kept, never a reason to refuse.
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class CloudMessage(_Open):
    id: str = Field(min_length=1, max_length=MESSAGE_ID)
    timestamp: EpochSeconds
    type: str = Field(min_length=1, max_length=TYPE)
    from_: str | None = Field(default=None, alias="from", max_length=IDENTITY)
    from_user_id: str | None = Field(default=None, max_length=IDENTITY)
    # Kept whole, but parts of them land in length-limited columns: checked below.
    context: Any = None
    referral: Any = None
    system: Any = None

    @model_validator(mode="after")
    def _has_sender(self) -> CloudMessage:
        if not (self.from_ or self.from_user_id):
            raise ValueError("a message needs 'from' or 'from_user_id'")
        return self

    @field_validator("context")
    @classmethod
    def _reply_to_fits(cls, context: Any) -> Any:
        if isinstance(context, dict) and context.get("id") is not None:
            _short_text(context["id"], room(Message.reply_to), "id")
        return context

    @field_validator("referral")
    @classmethod
    def _lead_source_fits(cls, referral: Any) -> Any:
        if isinstance(referral, dict):
            source = f"{referral.get('source_type') or 'ad'}:{referral.get('source_id') or '?'}"
            if len(source) > LEAD_SOURCE:
                raise ValueError(
                    f"source_type and source_id together must be at most {LEAD_SOURCE - 1} characters"
                )
        return referral

    @field_validator("system")
    @classmethod
    def _new_number_fits(cls, system: Any) -> Any:
        if isinstance(system, dict) and system.get("wa_id") and len(str(system["wa_id"])) > IDENTITY:
            raise ValueError(f"wa_id must be at most {IDENTITY} characters")
        return system


def _short_text(value: Any, limit: int, name: str) -> None:
    if not isinstance(value, str) or len(value) > limit:
        raise ValueError(f"{name} must be a string of at most {limit} characters")


class CloudStatus(_Open):
    id: str = Field(min_length=1, max_length=STATUS_ID)
    status: str = Field(min_length=1, max_length=STATUS)
    timestamp: EpochSeconds


class CloudProfile(_Open):
    name: str | None = Field(default=None, max_length=NAME)


class CloudContact(_Open):
    wa_id: str | None = Field(default=None, max_length=IDENTITY)
    user_id: str | None = Field(default=None, max_length=IDENTITY)
    profile: CloudProfile | None = None


class MessagesValue(_Open):
    contacts: list[CloudContact] = []
    messages: list[CloudMessage] = []
    statuses: list[CloudStatus] = []
    errors: list[dict[str, Any]] = []


class CloudEcho(_Open):
    """A message staff sent from the WhatsApp Business app (``smb_message_echoes``): ``to`` is
    the customer."""

    id: str = Field(min_length=1, max_length=MESSAGE_ID)
    timestamp: EpochSeconds
    type: str = Field(min_length=1, max_length=TYPE)
    to: str | None = Field(default=None, max_length=IDENTITY)
    to_user_id: str | None = Field(default=None, max_length=IDENTITY)

    @model_validator(mode="after")
    def _has_customer(self) -> CloudEcho:
        if not (self.to or self.to_user_id):
            raise ValueError("an echo needs 'to' or 'to_user_id'")
        return self


class EchoesValue(_Open):
    contacts: list[CloudContact] = []
    message_echoes: list[CloudEcho] = []


class Change(_Open):
    field: str
    value: dict[str, Any]


class Entry(_Open):
    id: str
    changes: list[Change]


class Envelope(_Open):
    object: Literal["whatsapp_business_account"]
    entry: list[Entry]


@router.get("/webhooks/whatsapp", response_class=PlainTextResponse)
def verify_subscription(
    request: Request,
    mode: Annotated[str | None, Query(alias="hub.mode")] = None,
    token: Annotated[str | None, Query(alias="hub.verify_token")] = None,
    challenge: Annotated[str | None, Query(alias="hub.challenge")] = None,
) -> PlainTextResponse:
    """Meta's subscription handshake: echo the challenge when the verify token matches."""
    settings: Settings = request.app.state.settings
    expected = settings.whatsapp_verify_token
    if not expected:
        if not settings.development_mode:
            raise not_configured("WHATSAPP_VERIFY_TOKEN")
        # Development mode takes unsigned posts, but there is no token to match here.
        return PlainTextResponse("WHATSAPP_VERIFY_TOKEN is not set", status_code=403)
    if mode != "subscribe" or not hmac.compare_digest((token or "").encode(), expected.encode()):
        return PlainTextResponse("verification token does not match", status_code=403)
    return PlainTextResponse(challenge or "")


@router.post("/webhooks/whatsapp")
async def receive(request: Request) -> JSONResponse:
    settings: Settings = request.app.state.settings
    body = await read_body(request, settings.max_body_bytes)
    signature = request.headers.get("x-hub-signature-256")
    known = await channels.known()
    if not known.by_phone_number_id:
        # One number, as before channels: the settings channel takes everything.
        verify_signature(
            settings.whatsapp_app_secret,
            body,
            signature,
            header="X-Hub-Signature-256",
            setting="WHATSAPP_APP_SECRET",
            development_mode=settings.development_mode,
        )
        events = inbox_events(_parse(body))
    else:
        document = parse_json(body)
        routes = {pnid: channels.cloud_route(known, pnid, settings) for pnid in _phone_number_ids(document)}
        every_secret = [settings.whatsapp_app_secret, *(r.secret for r in known.by_phone_number_id.values())]
        channels.verify(
            routes.values(),
            every_secret,
            body,
            signature,
            header="X-Hub-Signature-256",
            development_mode=settings.development_mode,
        )
        events = inbox_events(_parse_document(document), lambda pnid: routes.get(pnid, channels.UNKNOWN))
    stored = await store(events)
    return JSONResponse(stored.answer())


def _phone_number_ids(document: Any) -> set[Any]:
    """Every ``entry[].changes[].value.metadata.phone_number_id`` of a (not yet validated) body."""
    found: set[Any] = set()
    entries = document.get("entry") if isinstance(document, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for change in changes if isinstance(changes, list) else []:
            value = change.get("value") if isinstance(change, dict) else None
            metadata = value.get("metadata") if isinstance(value, dict) else None
            pnid = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
            found.add(pnid if isinstance(pnid, str) else None)
    return found


def _parse(body: bytes) -> Envelope:
    return _parse_document(parse_json(body))


def _parse_document(document: Any) -> Envelope:
    try:
        envelope = Envelope.model_validate(document)
    except ValidationError as exc:
        raise _shape_error(exc, ()) from exc
    for e, entry in enumerate(envelope.entry):
        for c, change in enumerate(entry.changes):
            shape = VALUE_SHAPES.get(change.field)
            if shape is None:
                continue
            try:
                shape.model_validate(change.value)
            except ValidationError as exc:
                raise _shape_error(exc, ("entry", e, "changes", c, "value")) from exc
    return envelope


def _shape_error(exc: ValidationError, prefix: tuple[int | str, ...]) -> Rejected:
    error = exc.errors()[0]
    field = _path(prefix + tuple(error["loc"]))
    return Rejected(400, f"not a WhatsApp webhook: {field}: {error['msg']}", field=field, reason="shape")


def _path(location: tuple[int | str, ...]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location).lstrip(".")


# The fields whose value is checked, and kept as events, message by message.
VALUE_SHAPES: dict[str, type[_Open]] = {"messages": MessagesValue, "smb_message_echoes": EchoesValue}
ECHOES = "smb_message_echoes"

# The WABA's template webhooks, by field: the inbox kind each becomes.
TEMPLATE_FIELDS = {
    "message_template_status_update": "template_status",
    "template_category_update": "template_category",
}


def inbox_events(envelope: Envelope, route_of: Callable[[Any], Route] | None = None) -> list[NewEvent]:
    """One inbox event per message, per status and per template change; other webhook fields are
    acknowledged only.

    ``route_of`` (when channels are stored) says which channel a change's
    ``metadata.phone_number_id`` is: its id goes into the payload (``channel_id``), and events
    for no enabled channel are kept as unknown_channel. Template changes belong to the WABA
    (``entry.id``), not to a number."""
    events: list[NewEvent] = []
    for entry in envelope.entry:
        for change in entry.changes:
            if change.field in TEMPLATE_FIELDS:
                events.append(_template_event(entry, change))
                continue
            if change.field not in VALUE_SHAPES:
                log.info("ignored webhook field", extra={"field": _loggable(change.field)})
                continue
            value = change.value
            metadata = value.get("metadata") or {}
            profiles = value.get("contacts") or []
            state, channel = PENDING, {}
            if route_of is not None:
                pnid = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
                route = route_of(pnid if isinstance(pnid, str) else None)
                state = PENDING if route.accepted else UNKNOWN_CHANNEL
                if route.accepted and route.channel_id is not None:
                    channel = {"channel_id": route.channel_id}
            if change.field == ECHOES:
                echoes = value.get("message_echoes") or []
                events.extend(_echo_event(echo, profiles, channel, state) for echo in echoes)
                continue
            for message in value.get("messages") or []:
                events.append(
                    NewEvent(
                        source="whatsapp",
                        kind="message",
                        dedupe_key=message["id"],
                        payload={
                            "message": message,
                            "contact": _profile_of(message, profiles),
                            "metadata": metadata,
                            **channel,
                        },
                        occurred_at=_epoch(message["timestamp"]),
                        state=state,
                    )
                )
            for status in value.get("statuses") or []:
                events.append(
                    NewEvent(
                        source="whatsapp",
                        kind="status",
                        dedupe_key=f"{status['id']}:{status['status']}",
                        payload={"status": status, "metadata": metadata, **channel},
                        occurred_at=_epoch(status["timestamp"]),
                        state=state,
                    )
                )
            for error in value.get("errors") or []:
                log.warning(
                    "WhatsApp reported an error",
                    extra={"code": _loggable(error.get("code")), "title": _loggable(error.get("title"))},
                )
    return events


def _template_event(entry: Entry, change: Change) -> NewEvent:
    """A template webhook for the WABA ``entry.id``. Meta sends each change once per status and
    time; the same change again is a replay."""
    value, at = change.value, getattr(entry, "time", None)
    at = at if isinstance(at, int) and not isinstance(at, bool) and 0 <= at < 10**11 else None
    change_of = value.get("event") or value.get("new_category")
    key = f"{entry.id}:{value.get('message_template_id')}:{change.field}:{change_of}:{at}"
    return NewEvent(
        source="whatsapp",
        kind=TEMPLATE_FIELDS[change.field],
        dedupe_key=key[: room(InboxEvent.dedupe_key)],
        payload={"waba_id": entry.id, "time": at, "value": value},
        occurred_at=_epoch(str(at)) if at is not None else datetime.now(UTC),
    )


def _loggable(value: Any) -> Any:
    """A value from the request, fit for a log line: numbers as they are, anything else as text of
    at most 200 characters (an unsigned sender could otherwise write megabytes per line)."""
    if value is None or isinstance(value, int | float):
        return value
    return str(value)[:200]


def _profile_of(message: dict[str, Any], profiles: list[dict[str, Any]]) -> dict[str, Any] | None:
    for profile in profiles:
        if (message.get("from") and profile.get("wa_id") == message.get("from")) or (
            message.get("from_user_id") and profile.get("user_id") == message.get("from_user_id")
        ):
            return profile
    return profiles[0] if len(profiles) == 1 else None


def _echo_event(
    echo: dict[str, Any], profiles: list[dict[str, Any]], channel: dict[str, Any], state: str
) -> NewEvent:
    """One ``message_echoes[]`` entry: staff typed it in the WhatsApp Business app; the
    customer (and their profile) is the one ``to`` names."""
    profile = _profile_of({"from": echo.get("to"), "from_user_id": echo.get("to_user_id")}, profiles)
    return NewEvent(
        source="whatsapp",
        kind="echo",
        dedupe_key=echo["id"],
        payload={"message": echo, "contact": profile, **channel},
        occurred_at=_epoch(echo["timestamp"]),
        state=state,
    )


def _epoch(value: str) -> datetime:
    return datetime.fromtimestamp(int(value), UTC)
