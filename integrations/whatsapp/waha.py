"""The WAHA gateway: a WhatsApp Business *app* session driven through WAHA's REST API.

A linked app session has no 24-hour customer-service window and no templates, so every message
goes as free text and ``window_open`` is ignored. Network failures are classified exactly as for
the Cloud API (``http.network_error``); WAHA has no error codes worth keying on, so its answers
are judged by HTTP status (``http.status_error``): 502 and 504 from a proxy are unconfirmed, 429
and other 5xx may pass later, any other refusal will not.
"""

from __future__ import annotations

import base64
import mimetypes
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from integrations.storage import CHUNK_BYTES
from integrations.whatsapp.base import Attachment, OutgoingMessage, PermanentError, Sent, Unconfirmed, digits
from integrations.whatsapp.http import json_or_none, post_json, request_json, status_error

# The WAHA endpoint each kind goes to (docs/rich-messages.md, "WAHA"); WAHA has no sticker,
# contacts, reaction, interactive or template (domain/outbound_kinds.py refuses them for WAHA).
_MEDIA_ENDPOINTS = {"image": "sendImage", "document": "sendFile", "video": "sendVideo", "audio": "sendVoice"}
# A linked file's type when its URL does not say (pywa's defaults for the same kinds).
_DEFAULT_MIME = {
    "image": "image/jpeg",
    "document": "application/pdf",
    "video": "video/mp4",
    "audio": "audio/ogg",
}


class WahaGateway:
    """Sends with ``POST {url}/api/sendText`` to ``<digits>@c.us`` in one WAHA session."""

    name = "waha"

    def __init__(self, url: str, api_key: str | None, session: str | None, timeout: float) -> None:
        self.base = f"{url.rstrip('/')}/api"
        self.url = f"{self.base}/sendText"
        self.session_name = session or "default"
        self.timeout = timeout
        self._headers = {"X-Api-Key": api_key} if api_key else {}
        self._session = requests.Session()

    def send(self, message: OutgoingMessage, *, window_open: bool) -> Sent:
        chat = {"session": self.session_name, "chatId": f"{digits(message.to)}@c.us"}
        url, body, kind = self.url, {**chat, "text": message.text}, "text"
        if message.body is not None:
            endpoint, fields, kind = _request_of(message)
            url, body = f"{self.base}/{endpoint}", {**chat, **fields}
        response = post_json(
            self._session, url, body, headers=self._headers, timeout=self.timeout, gateway=self.name
        )
        payload = json_or_none(response)
        if not 200 <= response.status_code < 300:
            raise status_error(response, self.name, _error_dict(response, payload))
        external_id = _message_id(payload)
        if external_id is None:
            raise Unconfirmed(
                f"waha: HTTP {response.status_code} without a message id",
                error={"message": response.text[:500], "http_status": response.status_code},
            )
        return Sent(external_id=external_id, type=kind, request=_without_data(body))

    # Labels (WhatsApp Business app labels, docs/formats.md "WAHA"): the catalogue of the
    # session, creating one, and a chat's labels, always set as the full list.

    def labels(self) -> list[WahaLabel]:
        """``GET /api/{session}/labels``: every label of the session."""
        payload = self._call("GET", f"{self.base}/{self.session_name}/labels", None)
        if not isinstance(payload, list):
            raise Unconfirmed("waha: the label list is not a list", error={"message": str(payload)[:500]})
        return [label for item in payload if (label := _label_of(item)) is not None]

    def create_label(self, name: str) -> WahaLabel:
        """``POST /api/{session}/labels`` ``{"name"}``: the new label with the id WAHA gave it."""
        payload = self._call("POST", f"{self.base}/{self.session_name}/labels", {"name": name})
        label = _label_of(payload)
        if label is None:
            raise Unconfirmed("waha: a created label without an id", error={"message": str(payload)[:500]})
        return label

    def set_chat_labels(self, chat_id: str, label_ids: list[str]) -> None:
        """``PUT /api/{session}/labels/chats/{chatId}`` ``{"labels": [{"id"}]}``: the chat's whole
        set of labels (an empty list takes them all away). Sending it again changes nothing."""
        url = f"{self.base}/{self.session_name}/labels/chats/{quote(chat_id, safe='')}"
        self._call("PUT", url, {"labels": [{"id": label_id} for label_id in label_ids]})

    def _call(self, method: str, url: str, body: dict[str, Any] | None) -> Any:
        response = request_json(
            self._session, method, url, body, headers=self._headers, timeout=self.timeout, gateway=self.name
        )
        payload = json_or_none(response)
        if not 200 <= response.status_code < 300:
            raise status_error(response, self.name, _error_dict(response, payload))
        return payload

    def close(self) -> None:
        self._session.close()


@dataclass(frozen=True)
class WahaLabel:
    id: str
    name: str


def _label_of(item: Any) -> WahaLabel | None:
    if not isinstance(item, dict) or item.get("id") in (None, ""):
        return None
    return WahaLabel(id=str(item["id"]), name=str(item.get("name") or ""))


def _request_of(message: OutgoingMessage) -> tuple[str, dict[str, Any], str]:
    """The WAHA endpoint, its fields and the kind for a rich message already checked for WAHA."""
    rich = message.body or {}
    kind = str(rich.get("type"))
    part = rich.get(kind) or {}
    fields: dict[str, Any] = {}
    reply_to = (rich.get("context") or {}).get("message_id")
    if reply_to:
        fields["reply_to"] = reply_to
    if kind == "text":
        return (
            "sendText",
            {**fields, "text": part["body"], "linkPreview": bool(part.get("preview_url"))},
            kind,
        )
    if kind == "location":
        where = {"latitude": part["latitude"], "longitude": part["longitude"]}
        title = part.get("name") or part.get("address")
        return "sendLocation", {**fields, **where, **({"title": title} if title else {})}, kind
    if kind in _MEDIA_ENDPOINTS:
        if part.get("caption"):
            fields["caption"] = part["caption"]
        return _MEDIA_ENDPOINTS[kind], {**fields, "file": _file_of(message, kind, part)}, kind
    raise PermanentError(f"waha: cannot send {kind!r}")


def _file_of(message: OutgoingMessage, kind: str, part: dict[str, Any]) -> dict[str, Any]:
    """WAHA's RemoteFile ``{mimetype, url}``: a ``link``, or our file by its signed, expiring link
    (WAHA fetches it from us as it sends, so no worker holds the file). BinaryFile (base64
    ``data``, the whole file in memory) only for our file when no link can be made (no
    PUBLIC_URL or SECRET_KEY): docs/rich-messages.md, "WAHA"."""
    attachment = message.attachment
    if "link" in part:
        guessed = mimetypes.guess_type(part["link"].split("?")[0])[0]
        file: dict[str, Any] = {"mimetype": guessed or _DEFAULT_MIME[kind], "url": part["link"]}
    elif attachment is not None:
        if attachment.url is not None:
            file = {"mimetype": attachment.mime_type, "url": attachment.url}
        else:
            file = {"mimetype": attachment.mime_type, "data": _base64_of(attachment)}
        if attachment.filename:
            file["filename"] = attachment.filename
    else:
        raise PermanentError(f"waha: {kind}.id is not a file of ours that WAHA can be given")
    if part.get("filename"):
        file["filename"] = part["filename"]
    if file["mimetype"] == "audio/ogg":
        file["mimetype"] = "audio/ogg; codecs=opus"  # what WAHA's sendVoice documents
    return file


def _base64_of(attachment: Attachment) -> str:
    """The file as base64, encoded as it streams from the store (whole 3-byte groups at a time);
    the JSON body still holds all of it."""
    reader, encoded, left = attachment.open(), [], b""
    while chunk := reader.read(CHUNK_BYTES):
        left += chunk
        whole = len(left) - len(left) % 3
        encoded.append(base64.b64encode(left[:whole]))
        left = left[whole:]
    encoded.append(base64.b64encode(left))
    return b"".join(encoded).decode()


def _without_data(body: dict[str, Any]) -> dict[str, Any]:
    """The request as kept with the message: a file's base64 bytes are not copied into the
    database, nor the signature of the link WAHA was given (a credential until it expires)."""
    file = body.get("file")
    if isinstance(file, dict) and "data" in file:
        return {**body, "file": {**file, "data": f"<{len(file['data'])} base64 characters>"}}
    if isinstance(file, dict) and "signature=" in str(file.get("url", "")):
        return {**body, "file": {**file, "url": file["url"].split("?", 1)[0]}}
    return body


def _message_id(payload: Any) -> str | None:
    """WAMessage ``id``: a string (``true_6281…@c.us_3EB0…``) or, from some engines, an object
    whose ``_serialized`` field is that string."""
    if not isinstance(payload, dict):
        return None
    value = payload.get("id")
    if isinstance(value, dict):
        value = value.get("_serialized")
    return value if isinstance(value, str) and value else None


def _error_dict(response: requests.Response, payload: Any) -> dict[str, Any]:
    """WAHA (NestJS) errors look like ``{"statusCode": 422, "message": "...", "error": "..."}``."""
    message = payload.get("message") if isinstance(payload, dict) else None
    if not isinstance(message, str):
        message = response.text[:500] or response.reason
    return {"message": message, "http_status": response.status_code}
