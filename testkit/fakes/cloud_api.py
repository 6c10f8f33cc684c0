"""A fake Meta Cloud API: ``POST /{version}/{phone_number_id}/messages`` as in docs/formats.md "Cloud API".

It checks the Bearer token (401, Graph code 190, when wrong; with ``numbers``, several phone
number ids each with its own token, as several channels of one install), answers a valid send with a fresh
``wamid.…`` and records it as accepted. ``fail_next(status, code)`` answers with a Graph error
envelope carrying ``code``; with ``code=None`` it answers a bare text body, as a proxy or load
balancer in front of the Graph API would. ``accept_then_fail_next(502)`` accepts the message and
still answers such a bare error: Meta got it, the proxy lost the answer.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from testkit.fakes import Action, FakeServer, Part, Reply

_PATH = re.compile(r"/(?P<version>v\d+(?:\.\d+)?)/(?P<phone_number_id>[^/]+)/messages")
_UPLOAD = re.compile(r"/(?P<version>v\d+(?:\.\d+)?)/(?P<phone_number_id>[^/]+)/media")
# What a send body's ``type`` may be, each carried under its own key (docs/rich-messages.md).
_KINDS = {
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "location",
    "contacts",
    "reaction",
    "interactive",
    "template",
}
_MEDIA_INFO = re.compile(r"/(?P<version>v\d+(?:\.\d+)?)/(?P<media_id>[0-9]+)")
_TEMPLATES = re.compile(r"/(?P<version>v\d+(?:\.\d+)?)/(?P<waba_id>[0-9]+)/message_templates(?:\?.*)?")
_EVENTS = re.compile(r"/(?P<version>v\d+(?:\.\d+)?)/(?P<dataset_id>[0-9]+)/events")
# Event names the Conversions API takes with action_source business_messaging (formats-rich.md §7).
CONVERSION_EVENT_NAMES = frozenset(
    {"LeadSubmitted", "Purchase", "AddToCart", "InitiateCheckout", "ViewContent"}
)
_MEDIA_BYTES = re.compile(r"/whatsapp_business/attachments/\?mid=(?P<media_id>[0-9]+)")


@dataclass
class StoredMedia:
    data: bytes
    mime_type: str
    sha256: str  # what the media's metadata declares (a test may make it lie)


def graph_error(code: int, message: str) -> dict[str, Any]:
    """The Graph API's error envelope (docs/formats.md "Cloud API")."""
    return {
        "error": {
            "message": f"(#{code}) {message}",
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": message},
            "fbtrace_id": f"A{uuid.uuid4().hex[:22]}",
        }
    }


class FakeCloudApi(FakeServer):
    def __init__(
        self,
        access_token: str = "test-access-token",
        phone_number_id: str = "1234567890",
        version: str = "v21.0",
        numbers: dict[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.access_token = access_token
        self.phone_number_id = phone_number_id
        self.version = version
        # phone_number_id -> its access token; None: any path, with ``access_token``.
        self.numbers = numbers
        # (phone_number_id of the path, recipient) of every accepted message, in order; and
        # (phone_number_id, body) of each.
        self.sent_from: list[tuple[str, str]] = []
        self.sent_bodies: list[tuple[str, dict[str, Any]]] = []
        self.media: dict[str, StoredMedia] = {}
        # Files uploaded to ``POST /{phone_number_id}/media``, in order: (phone_number_id, media id).
        self.uploads: list[tuple[str, str]] = []
        self.templates: dict[str, list[dict[str, Any]]] = {}  # by WABA id, as Meta lists them
        # Where a media URL points (a test may point it elsewhere, as a forged answer would).
        self.media_url_base: str | None = None
        # Conversions API events taken (``POST /{dataset_id}/events``), each with its dataset id.
        self.conversion_events: list[tuple[str, dict[str, Any]]] = []
        self._conversion_failures = 0  # the next this many event posts answer 503 (code 2)

    def add_media(self, media_id: str, data: bytes, mime_type: str, sha256: str | None = None) -> None:
        """A file a customer sent, as Meta keeps it: metadata at ``/{media_id}``, bytes at its URL."""
        self.media[media_id] = StoredMedia(data, mime_type, sha256 or hashlib.sha256(data).hexdigest())

    def _template_page(self, waba_id: str, path: str) -> Reply:
        """Cursor paging as the Graph API does it: ``limit`` per page, ``after`` the cursor."""
        query = parse_qs(urlsplit(path).query)
        limit, start = int(query.get("limit", ["25"])[0]), int(query.get("after", ["0"])[0])
        items = self.templates.get(waba_id, [])
        page: dict[str, Any] = {"data": items[start : start + limit]}
        if start + limit < len(items):
            after = str(start + limit)
            page["paging"] = {
                "cursors": {"before": str(start), "after": after},
                "next": f"{self.base_url}/{waba_id}/message_templates?limit={limit}&after={after}",
            }
        return Reply(200, page)

    def media_downloads(self, media_id: str) -> int:
        """How many times the bytes of ``media_id`` were fetched."""
        return sum(1 for r in self.requests if r["body"] is None and r["path"].endswith(f"mid={media_id}"))

    def handle_get(self, path: str, headers: dict[str, str]) -> Reply:
        if headers.get("authorization") != f"Bearer {self.access_token}":
            return Reply(401, graph_error(190, "Invalid OAuth access token - Cannot parse access token"))
        action = self.next_action()
        if action is not None and action.kind == "fail":
            return _failure(action)
        listing = _TEMPLATES.fullmatch(path)
        if listing:
            return self._template_page(listing["waba_id"], path)
        info, download = _MEDIA_INFO.fullmatch(path), _MEDIA_BYTES.fullmatch(path)
        found = self.media.get((info or download)["media_id"]) if (info or download) else None
        if found is None:
            return Reply(404, graph_error(100, "Unsupported get request. Object does not exist"))
        if download:
            return Reply(200, found.data, content_type=found.mime_type)
        media_id = info["media_id"]
        base = self.media_url_base or self.root_url
        return Reply(
            200,
            {
                "messaging_product": "whatsapp",
                "url": f"{base}/whatsapp_business/attachments/?mid={media_id}",
                "mime_type": found.mime_type,
                "sha256": found.sha256,
                "file_size": len(found.data),
                "id": media_id,
            },
        )

    @property
    def base_url(self) -> str:
        """What ``WHATSAPP_API_BASE`` would be: ``http://127.0.0.1:PORT/v21.0``."""
        return f"{self.root_url}/{self.version}"

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.sent_from.clear()
            self.sent_bodies.clear()
            self.templates.clear()
            self.media.clear()
            self.uploads.clear()
            self.media_url_base = None
            self.conversion_events.clear()
            self._conversion_failures = 0

    def handle_multipart(self, path: str, headers: dict[str, str], parts: dict[str, Part]) -> Reply:
        """``POST /{phone_number_id}/media`` as Meta documents it (formats-rich.md 2.1): fields
        ``messaging_product=whatsapp``, ``type`` and ``file``; answers ``{"id": ...}``."""
        match = _UPLOAD.fullmatch(path)
        if not match:
            return Reply(404, graph_error(100, "Unknown path components"))
        number = match["phone_number_id"]
        token = (self.numbers or {}).get(number, self.access_token)
        if headers.get("authorization") != f"Bearer {token}":
            return Reply(401, graph_error(190, "Invalid OAuth access token - Cannot parse access token"))
        action = self.next_action()
        if action is not None and action.kind == "fail":
            return _failure(action)
        product, kind, file = parts.get("messaging_product"), parts.get("type"), parts.get("file")
        if product is None or product.data != b"whatsapp":
            return Reply(400, graph_error(100, "Invalid parameter: messaging_product must be whatsapp"))
        if kind is None or file is None or not file.data:
            return Reply(400, graph_error(100, "Invalid parameter: type and file are required"))
        media_id = str(uuid.uuid4().int)[:16]
        with self._lock:
            self.uploads.append((number, media_id))
        self.add_media(media_id, file.data, kind.data.decode())
        return Reply(200, {"id": media_id})

    def __enter__(self) -> FakeCloudApi:
        return self

    def handle(self, path: str, headers: dict[str, str], body: Any) -> Reply:
        events = _EVENTS.fullmatch(path)
        if events:
            return self._conversion_events(events["dataset_id"], headers, body)
        match = _PATH.fullmatch(path)
        if not match:
            return Reply(404, graph_error(100, "Unknown path components"))
        number = match["phone_number_id"]
        if self.numbers is not None and number not in self.numbers:
            return Reply(400, graph_error(100, f"Unsupported post request. Object with ID '{number}'"))
        token = self.numbers[number] if self.numbers is not None else self.access_token
        if headers.get("authorization") != f"Bearer {token}":
            return Reply(401, graph_error(190, "Invalid OAuth access token - Cannot parse access token"))
        action = self.next_action()
        if action is not None and action.kind == "fail":
            return _failure(action)
        problem = _invalid(body)
        if problem:
            return Reply(400, graph_error(100, f"Invalid parameter: {problem}"))
        self.accept(body)
        with self._lock:
            self.sent_from.append((number, str(body.get("to"))))
            self.sent_bodies.append((number, body))
        answer = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": body["to"], "wa_id": body["to"]}],
            "messages": [{"id": f"wamid.{uuid.uuid4().hex.upper()}"}],
        }
        if action is not None and action.kind == "drop":
            return Reply(200, drop=True)
        if action is not None and action.kind == "accept_fail":
            return _failure(action)  # Meta has it; what came back is a proxy's bare error
        return Reply(200, answer, delay=action.seconds if action is not None else 0.0)

    def fail_conversions_next(self, times: int = 1) -> None:
        """The next ``times`` Conversions API posts answer 503 (Graph code 2), messages unaffected."""
        with self._lock:
            self._conversion_failures += times

    def _conversion_events(self, dataset_id: str, headers: dict[str, str], body: Any) -> Reply:
        """Meta's Conversions API for business messaging: ``{"data": [event, ...]}``."""
        if headers.get("authorization") != f"Bearer {self.access_token}":
            return Reply(401, graph_error(190, "Invalid OAuth access token - Cannot parse access token"))
        with self._lock:
            failing, self._conversion_failures = (
                self._conversion_failures > 0,
                max(0, self._conversion_failures - 1),
            )
        if failing:
            return Reply(503, graph_error(2, "Service temporarily unavailable"))
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or not data:
            return Reply(400, graph_error(100, "Invalid parameter: data"))
        for item in data:
            if not isinstance(item, dict) or item.get("event_name") not in CONVERSION_EVENT_NAMES:
                error = graph_error(100, "Messaging Event Invalid Event Type")
                error["error"]["error_subcode"] = 2804066
                return Reply(400, error)
            if item.get("action_source") != "business_messaging" or not (item.get("user_data") or {}).get(
                "ctwa_clid"
            ):
                return Reply(400, graph_error(100, "Invalid parameter: user_data.ctwa_clid"))
        with self._lock:
            self.conversion_events.extend((dataset_id, item) for item in data)
        return Reply(200, {"events_received": len(data), "messages": [], "fbtrace_id": uuid.uuid4().hex})


def _failure(action: Action) -> Reply:
    headers = {"Retry-After": f"{action.retry_after:g}"} if action.retry_after is not None else {}
    if action.code is None:
        return Reply(action.status, f"{action.status} upstream error".encode(), headers)
    return Reply(action.status, graph_error(action.code, "scripted failure"), headers)


def _invalid(body: Any) -> str | None:
    """What the Graph API would refuse in a send body, or None."""
    if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
        return "messaging_product must be whatsapp"
    if not isinstance(body.get("to"), str) or not body["to"]:
        return "to"
    if body.get("type") == "text":
        text = body.get("text")
        return None if isinstance(text, dict) and isinstance(text.get("body"), str) else "text.body"
    if body.get("type") == "template":
        template = body.get("template")
        ok = (
            isinstance(template, dict) and template.get("name") and "code" in (template.get("language") or {})
        )
        return None if ok else "template"
    kind = body.get("type")
    if kind in _KINDS:
        return None if isinstance(body.get(kind), dict | list) else str(kind)
    return "type"
