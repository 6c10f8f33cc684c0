"""Every kind of message we can send, checked against WhatsApp's limits before it is queued.

The shapes are the Cloud API's message objects without ``messaging_product`` and ``to`` (docs/
formats.md, "Outbound kinds"). A body WhatsApp would reject (four buttons, a 25-character row
title, a caption on a sticker) is refused here, naming the field, instead of failing at Meta
after it was queued. Unknown fields are refused too: Meta rejects them, and a typo
("captoin") would otherwise be dropped silently. ``readable_text`` gives every kind the text a
person reads in the conversation list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

TEXT_MAX, CAPTION_MAX, BODY_MAX, HEADER_MAX, FOOTER_MAX = 4096, 1024, 1024, 60, 60
BUTTONS_MAX, BUTTON_TITLE_MAX, BUTTON_ID_MAX = 3, 20, 256
LIST_BUTTON_MAX, SECTIONS_MAX, ROWS_MAX, ROW_TITLE_MAX, ROW_ID_MAX, ROW_DESCRIPTION_MAX = (
    20,
    10,
    10,
    24,
    200,
    72,
)
SECTION_TITLE_MAX, CTA_TEXT_MAX, CONTACTS_MAX = 24, 20, 257
MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")
# What a WAHA session can send (docs/formats.md, "WAHA sending"); the rest is Cloud API only.
WAHA_KINDS = frozenset({"text", "image", "video", "audio", "document", "location"})


@dataclass(frozen=True)
class MediaKind:
    kind: str
    max_bytes: int


# What WhatsApp sends as each media kind, and the largest file of each (docs/formats.md, "Media").
_MB = 1024 * 1024
_MEDIA_MIME = {
    **dict.fromkeys(("image/jpeg", "image/png"), MediaKind("image", 5 * _MB)),
    **dict.fromkeys(("video/mp4", "video/3gpp"), MediaKind("video", 16 * _MB)),
    **dict.fromkeys(
        ("audio/aac", "audio/amr", "audio/mpeg", "audio/mp4", "audio/ogg"), MediaKind("audio", 16 * _MB)
    ),
    "image/webp": MediaKind("sticker", 500 * 1024),
    **dict.fromkeys(
        (
            "application/pdf",
            "text/plain",
            "application/msword",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.ms-excel",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "application/vnd.ms-powerpoint",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        ),
        MediaKind("document", 100 * _MB),
    ),
}


def media_kind_of(mime_type: str) -> MediaKind | None:
    """The kind a file of this type is sent as, with its size limit; None if WhatsApp refuses it."""
    return _MEDIA_MIME.get(mime_type)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextBody(_Strict):
    body: str = Field(min_length=1, max_length=TEXT_MAX)
    preview_url: bool = False


class Media(_Strict):
    """Exactly one of ``id`` (from POST /api/media) or ``link`` (Meta fetches it; we never do)."""

    id: str | None = Field(default=None, min_length=1, max_length=128)
    link: str | None = Field(default=None, pattern=r"^https://", max_length=2000)
    caption: str | None = Field(default=None, max_length=CAPTION_MAX)
    filename: str | None = Field(default=None, min_length=1, max_length=240)
    voice: bool | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Media:
        if (self.id is None) == (self.link is None):
            raise ValueError("give exactly one of id (an uploaded media id) or link (an https URL)")
        return self


class Location(_Strict):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    name: str | None = Field(default=None, max_length=1000)
    address: str | None = Field(default=None, max_length=1000)


class Reaction(_Strict):
    message_id: str = Field(min_length=1, max_length=255)
    emoji: str = Field(max_length=16)  # "" removes our reaction


class Context(_Strict):
    message_id: str = Field(min_length=1, max_length=255)


class Header(_Strict):
    type: Literal["text", "image", "video", "document"]
    text: str | None = Field(default=None, min_length=1, max_length=HEADER_MAX)
    image: Media | None = None
    video: Media | None = None
    document: Media | None = None

    @model_validator(mode="after")
    def _matches_type(self) -> Header:
        if getattr(self, self.type) is None:
            raise ValueError(f"a header of type {self.type!r} needs its {self.type!r} field")
        return self


class Body(_Strict):
    text: str = Field(min_length=1, max_length=BODY_MAX)


class Footer(_Strict):
    text: str = Field(min_length=1, max_length=FOOTER_MAX)


class Reply(_Strict):
    id: str = Field(min_length=1, max_length=BUTTON_ID_MAX)
    title: str = Field(min_length=1, max_length=BUTTON_TITLE_MAX)


class ReplyButton(_Strict):
    type: Literal["reply"]
    reply: Reply


class ButtonAction(_Strict):
    buttons: list[ReplyButton] = Field(min_length=1, max_length=BUTTONS_MAX)

    @model_validator(mode="after")
    def _unique_titles(self) -> ButtonAction:
        titles = [button.reply.title for button in self.buttons]
        if len(set(titles)) != len(titles):
            raise ValueError("button titles must differ")
        return self


class Row(_Strict):
    id: str = Field(min_length=1, max_length=ROW_ID_MAX)
    title: str = Field(min_length=1, max_length=ROW_TITLE_MAX)
    description: str | None = Field(default=None, max_length=ROW_DESCRIPTION_MAX)


class Section(_Strict):
    title: str | None = Field(default=None, min_length=1, max_length=SECTION_TITLE_MAX)
    rows: list[Row] = Field(min_length=1)


class ListAction(_Strict):
    button: str = Field(min_length=1, max_length=LIST_BUTTON_MAX)
    sections: list[Section] = Field(min_length=1, max_length=SECTIONS_MAX)

    @model_validator(mode="after")
    def _rows_and_titles(self) -> ListAction:
        if sum(len(section.rows) for section in self.sections) > ROWS_MAX:
            raise ValueError(f"a list holds at most {ROWS_MAX} rows across all sections")
        if len(self.sections) > 1 and any(section.title is None for section in self.sections):
            raise ValueError("with more than one section, every section needs a title")
        return self


class CtaParameters(_Strict):
    display_text: str = Field(min_length=1, max_length=CTA_TEXT_MAX)
    url: str = Field(pattern=r"^https?://", max_length=2000)


class CtaAction(_Strict):
    name: Literal["cta_url"]
    parameters: CtaParameters


class FlowParameters(_Strict):
    flow_message_version: Literal["3"]
    flow_token: str | None = Field(default=None, min_length=1, max_length=200)
    flow_id: str | None = Field(default=None, min_length=1)
    flow_name: str | None = Field(default=None, min_length=1)
    flow_cta: str = Field(min_length=1, max_length=CTA_TEXT_MAX)
    mode: Literal["published", "draft"] = "published"
    flow_action: Literal["navigate", "data_exchange"] = "navigate"
    flow_action_payload: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _flow_named_once(self) -> FlowParameters:
        if (self.flow_id is None) == (self.flow_name is None):
            raise ValueError("give exactly one of flow_id or flow_name")
        if self.flow_action == "navigate" and not (self.flow_action_payload or {}).get("screen"):
            raise ValueError("flow_action navigate needs flow_action_payload.screen")
        return self


class FlowAction(_Strict):
    name: Literal["flow"]
    parameters: FlowParameters


class _Interactive(_Strict):
    header: Header | None = None
    body: Body
    footer: Footer | None = None


class Buttons(_Interactive):
    type: Literal["button"]
    action: ButtonAction


class ListMessage(_Interactive):
    type: Literal["list"]
    action: ListAction

    @model_validator(mode="after")
    def _text_header(self) -> ListMessage:
        if self.header is not None and self.header.type != "text":
            raise ValueError("a list's header can only be text")
        return self


class CallToAction(_Interactive):
    type: Literal["cta_url"]
    action: CtaAction


class FlowMessage(_Interactive):
    type: Literal["flow"]
    action: FlowAction


Interactive = Annotated[Buttons | ListMessage | CallToAction | FlowMessage, Field(discriminator="type")]


class TemplateLanguage(_Strict):
    code: str = Field(min_length=2, max_length=15)
    policy: Literal["deterministic"] | None = None


class Template(BaseModel):
    # Components vary widely (header media, named parameters, buttons): Meta checks them against
    # the approved template; here only the name, the language and their shape.
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=512, pattern=r"^[a-z0-9_]+$")
    language: TemplateLanguage
    components: list[dict[str, Any]] = Field(default_factory=list)


class _Message(_Strict):
    context: Context | None = None


class TextMessage(_Message):
    type: Literal["text"]
    text: TextBody


class ImageMessage(_Message):
    type: Literal["image"]
    image: Media


class VideoMessage(_Message):
    type: Literal["video"]
    video: Media


class AudioMessage(_Message):
    type: Literal["audio"]
    audio: Media


class DocumentMessage(_Message):
    type: Literal["document"]
    document: Media


class StickerMessage(_Message):
    type: Literal["sticker"]
    sticker: Media


class LocationMessage(_Message):
    type: Literal["location"]
    location: Location


class ContactName(BaseModel):
    model_config = ConfigDict(extra="allow")  # first_name, last_name, ...
    formatted_name: str = Field(min_length=1, max_length=1000)


class ContactCard(BaseModel):
    model_config = ConfigDict(extra="allow")  # phones, emails, addresses, org, ... as Meta has them
    name: ContactName


class ContactsMessage(_Message):
    type: Literal["contacts"]
    contacts: list[ContactCard] = Field(min_length=1, max_length=CONTACTS_MAX)


class ReactionMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a reaction takes no context
    type: Literal["reaction"]
    reaction: Reaction


class InteractiveMessage(_Message):
    type: Literal["interactive"]
    interactive: Interactive


class TemplateMessage(_Message):
    type: Literal["template"]
    template: Template


OutboundBody = Annotated[
    TextMessage
    | ImageMessage
    | VideoMessage
    | AudioMessage
    | DocumentMessage
    | StickerMessage
    | LocationMessage
    | ContactsMessage
    | ReactionMessage
    | InteractiveMessage
    | TemplateMessage,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(OutboundBody)
_NO_CAPTION = ("audio", "sticker")


class NotSendable(ValueError):
    """Why WhatsApp (or the channel's gateway) would refuse this body, naming the field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field, self.problem = field, problem


def check(body: Any, gateway: str = "cloud") -> dict[str, Any]:
    """The body exactly as given (the gateway receives what the client wrote, defaults not added),
    or NotSendable naming the first problem."""
    try:
        message = _ADAPTER.validate_python(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = _field(error["loc"])
        if error["type"] in ("union_tag_invalid", "union_tag_not_found") and field != "type":
            field += ".type"  # an interactive message of a kind we do not know
        raise NotSendable(field, error["msg"].removeprefix("Value error, ")) from None
    kind = message.type
    if kind in _NO_CAPTION and getattr(message, kind).caption is not None:
        raise NotSendable(f"{kind}.caption", f"WhatsApp shows no caption on {kind}")
    if gateway == "waha" and kind not in WAHA_KINDS:
        raise NotSendable("type", f"the WAHA gateway cannot send {kind!r} (it sends {sorted(WAHA_KINDS)})")
    return message.model_dump(exclude_unset=True)


_KINDS = {"text", "location", "contacts", "reaction", "interactive", "template", *MEDIA_KINDS}
_INTERACTIVE_TAGS = {"button", "list", "cta_url", "flow"}


def _field(loc: tuple[Any, ...]) -> str:
    """``interactive.action.buttons[3].reply.title`` from pydantic's location, which repeats each
    union's tag (``("interactive", "interactive", "button", "action", ...)``)."""
    parts = list(loc)
    if parts and parts[0] in _KINDS:
        parts.pop(0)  # the top-level union's tag
    if len(parts) > 1 and parts[0] == "interactive" and parts[1] in _INTERACTIVE_TAGS:
        parts.pop(1)
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "type"


def readable_text(body: dict[str, Any]) -> str:
    """What a person reads for this message in a conversation: the text, a caption, the body of
    an interactive message, a location's name, a template's name."""
    kind = body.get("type")
    part = body.get(kind) if isinstance(kind, str) else None
    if not isinstance(part, dict | list):
        return ""
    if kind == "text":
        return str(part.get("body", ""))
    if kind in MEDIA_KINDS:
        return str(part.get("caption") or part.get("filename") or f"[{kind}]")
    if kind == "location":
        where = f"[location {part.get('latitude')}, {part.get('longitude')}]"
        return str(part.get("name") or part.get("address") or where)
    if kind == "contacts":
        return ", ".join(str(card.get("name", {}).get("formatted_name", "")) for card in part)
    if kind == "reaction":
        return str(part.get("emoji", ""))
    if kind == "interactive":
        return str(part.get("body", {}).get("text", ""))
    if kind == "template":
        return f"[template {part.get('name')}]"
    return ""


# A template's header parameter may carry these media (formats-rich.md 3.1, "header media").
_TEMPLATE_HEADER_MEDIA = ("image", "video", "document")


@dataclass(frozen=True)
class MediaSlot:
    """Where a checked body carries a media object: the kind, its field name for errors, and the
    path of keys and indexes to the object (``{"id"|"link", ...}``)."""

    kind: str
    field: str
    path: tuple[str | int, ...]


def media_slot(body: dict[str, Any]) -> MediaSlot | None:
    """The one media object of a checked body, if any: a media message's, an interactive
    header's (image, video, document), or a template's header parameter. A message carries at
    most one: WhatsApp has one header per message, and a media message is its file."""
    kind = body.get("type")
    if kind in MEDIA_KINDS:
        return MediaSlot(str(kind), str(kind), (str(kind),))
    if kind == "interactive":
        header = body["interactive"].get("header") or {}
        sort = header.get("type")
        if sort in ("image", "video", "document"):
            return MediaSlot(sort, f"interactive.header.{sort}", ("interactive", "header", sort))
    if kind == "template":
        for number, component in enumerate(body["template"].get("components") or []):
            if str(component.get("type", "")).lower() != "header":
                continue
            for index, parameter in enumerate(component.get("parameters") or []):
                sort = str(parameter.get("type", "")).lower() if isinstance(parameter, dict) else ""
                if sort in _TEMPLATE_HEADER_MEDIA and isinstance(parameter.get(sort), dict):
                    field = f"template.components[{number}].parameters[{index}].{sort}"
                    path = ("template", "components", number, "parameters", index, sort)
                    return MediaSlot(sort, field, path)
    return None


def media_at(body: dict[str, Any], slot: MediaSlot) -> dict[str, Any]:
    """The media object at ``slot``."""
    part: Any = body
    for key in slot.path:
        part = part[key]
    return part


def with_media_at(body: dict[str, Any], slot: MediaSlot, media: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``body`` with the media object at ``slot`` replaced (the rest shared, unchanged)."""

    def put(part: Any, path: tuple[str | int, ...]) -> Any:
        if not path:
            return media
        head, rest = path[0], path[1:]
        if isinstance(part, list):
            assert isinstance(head, int)
            return [put(item, rest) if number == head else item for number, item in enumerate(part)]
        return {**part, head: put(part[head], rest)}

    return put(body, slot.path)


def choices_body(
    text: str, kind: str, options: list[tuple[str, str | None]], button: str | None = None
) -> dict[str, Any]:
    """An interactive message offering ``options`` under ``text``: reply buttons (``kind``
    "buttons") or a list opened by ``button``; each choice's id is ``choice:<n>`` (1-based), what
    the customer's tap answers. Not checked here: ``check`` it, as any body."""
    if kind == "buttons":
        buttons = [
            {"type": "reply", "reply": {"id": f"choice:{number}", "title": title}}
            for number, (title, _) in enumerate(options, 1)
        ]
        interactive: dict[str, Any] = {
            "type": "button",
            "body": {"text": text},
            "action": {"buttons": buttons},
        }
    else:
        rows = [
            {"id": f"choice:{number}", "title": title, **({"description": about} if about else {})}
            for number, (title, about) in enumerate(options, 1)
        ]
        interactive = {
            "type": "list",
            "body": {"text": text},
            "action": {"button": button or "", "sections": [{"rows": rows}]},
        }
    return {"type": "interactive", "interactive": interactive}
