"""The WAHA gateway: a WhatsApp Business *app* session driven through WAHA's REST API.

A linked app session has no 24-hour customer-service window and no templates, so every message
goes as free text and ``window_open`` is ignored. Network failures are classified exactly as for
the Cloud API (``http.network_error``); WAHA has no error codes worth keying on, so its answers
are judged by HTTP status (``http.status_error``): 502 and 504 from a proxy are unconfirmed, 429
and other 5xx may pass later, any other refusal will not.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests

from integrations.whatsapp.base import Attachment, OutgoingMessage, PermanentError, Sent, Unconfirmed, digits
from integrations.whatsapp.http import json_or_none, post_json, post_stream, request_json, status_error
from integrations.whatsapp.waha_body import Base64Data, StreamedBody

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
        response, warning = self._post(url, body), None
        refused = _link_refused(message.attachment, body, response)
        if refused is not None and message.attachment is not None:
            # WAHA could not download our signed link (PUBLIC_URL wrong, or unreachable from
            # WAHA) and said so before sending anything: the same message once more, its file
            # inline. Any other answer is judged as usual below (never sent twice).
            body = {**body, "file": _inline(body["file"], message.attachment)}
            response = self._post(url, body)
            warning = {
                "message": f"WAHA could not fetch our file from PUBLIC_URL ({refused}); sent it as "
                "base64 instead: check that PUBLIC_URL is reachable from WAHA",
                "waha_link_refused": refused,
            }
        payload = json_or_none(response)
        if not 200 <= response.status_code < 300:
            raise status_error(response, self.name, _error_dict(response, payload))
        external_id = _message_id(payload)
        if external_id is None:
            raise Unconfirmed(
                f"waha: HTTP {response.status_code} without a message id",
                error={"message": response.text[:500], "http_status": response.status_code},
            )
        return Sent(external_id=external_id, type=kind, request=_without_data(body), warning=warning)

    def _post(self, url: str, body: dict[str, Any]) -> requests.Response:
        """One send; a body with our file inline streams it (a new stream each time)."""
        file = body.get("file")
        if isinstance(file, dict) and isinstance(file.get("data"), Base64Data):
            return post_stream(
                self._session,
                url,
                StreamedBody(body),
                content_type="application/json",
                headers=self._headers,
                timeout=self.timeout,
                gateway=self.name,
            )
        # WAHA downloads a file's url before it answers, for up to FILE_FETCH_SECONDS: wait for
        # its answer past that, so a link it cannot fetch ends in its error (sent inline, below)
        # rather than in our read timeout (unconfirmed, never re-sent).
        fetches = isinstance(file, dict) and "url" in file
        timeout = max(self.timeout, FILE_FETCH_SECONDS + 5) if fetches else self.timeout
        return post_json(self._session, url, body, headers=self._headers, timeout=timeout, gateway=self.name)

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
    ``data``, streamed from the store as the request is written) for our file when no link can be
    made (no PUBLIC_URL or SECRET_KEY): docs/rich-messages.md, "WAHA"."""
    attachment = message.attachment
    if "link" in part:
        guessed = mimetypes.guess_type(part["link"].split("?")[0])[0]
        file: dict[str, Any] = {"mimetype": guessed or _DEFAULT_MIME[kind], "url": part["link"]}
    elif attachment is not None:
        file = {"mimetype": attachment.mime_type, "url": attachment.url}
        if attachment.url is None:
            file = _inline(file, attachment)
        if attachment.filename:
            file["filename"] = attachment.filename
    else:
        raise PermanentError(f"waha: {kind}.id is not a file of ours that WAHA can be given")
    if part.get("filename"):
        file["filename"] = part["filename"]
    if file["mimetype"] == "audio/ogg":
        file["mimetype"] = "audio/ogg; codecs=opus"  # what WAHA's sendVoice documents
    return file


def _inline(file: dict[str, Any], attachment: Attachment) -> dict[str, Any]:
    """The same file as BinaryFile: ``data`` in place of ``url``, read from the store when sent."""
    return {**{k: v for k, v in file.items() if k != "url"}, "data": Base64Data(attachment)}


# How long WAHA waits for a file's url (utils/fetch.ts ``fetchBuffer``'s axios timeout).
FILE_FETCH_SECONDS = 30

# What WAHA answers when it cannot fetch a file's URL, before anything is sent: HTTP 500 from its
# exception filter with the error its download threw (utils/fetch.ts ``fetchBuffer``): axios's
# (``AxiosError``: refused, unknown host, timeout, a 4xx/5xx from us), or its own check of the URL.
_URL_CHECKS = frozenset(
    {
        "Invalid URL format",
        "Access to internal resources is forbidden",
        "Access to private networks is forbidden",
        "Invalid IP address",
    }
)


def _link_refused(
    attachment: Attachment | None, body: dict[str, Any], response: requests.Response
) -> str | None:
    """What WAHA said when it could not fetch our file's signed link, else None (any other
    answer, or a link that is not ours: a customer's link has no inline alternative)."""
    file = body.get("file")
    if attachment is None or attachment.url is None or not isinstance(file, dict):
        return None
    if file.get("url") != attachment.url or response.status_code != 500:
        return None
    payload = json_or_none(response)
    exception = payload.get("exception") if isinstance(payload, dict) else None
    if not isinstance(exception, dict):
        return None
    message = str(exception.get("message") or "")
    checked = message in _URL_CHECKS or message.startswith("Invalid URL scheme")
    if exception.get("name") == "AxiosError" or checked:
        return message or str(exception.get("code") or "AxiosError")
    return None


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
    """WAHA (NestJS) errors look like ``{"statusCode": 422, "message": "...", "error": "..."}``;
    its 500s like ``{"statusCode": 500, "exception": {"message", "name", ...}, "request": ...}``."""
    message = payload.get("message") if isinstance(payload, dict) else None
    exception = payload.get("exception") if isinstance(payload, dict) else None
    if not isinstance(message, str) and isinstance(exception, dict):
        message = exception.get("message")  # a 500 from WAHA's exception filter
    if not isinstance(message, str):
        message = response.text[:500] or response.reason
    return {"message": message, "http_status": response.status_code}
