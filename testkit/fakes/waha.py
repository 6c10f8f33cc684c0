"""A fake WAHA server: ``POST /api/sendText`` as in docs/formats.md "WAHA", and the
``message.any`` echo WAHA then sends of each accepted message (``echo_of``); the labels API
(``GET|POST /api/{session}/labels``, ``PUT /api/{session}/labels/chats/{chatId}`` with the chat's
full set), keeping each session's labels and each chat's set (``chat_labels``).

A media send's file arrives as ``data`` (base64, in a body sent with its Content-Length: 411
otherwise) or as a ``url``, which with ``fetch_files=True`` the fake downloads as WAHA does,
answering WAHA's 500 (its exception filter's body, an ``AxiosError``) when it cannot; the bytes
of every file it got are kept, in order, in ``files_received``.

It checks ``X-Api-Key`` when built with one (401 otherwise), answers with a WAMessage-like body
whose ``id`` is a string (``true_<chatId>_<hex>``) or, with ``id_as_object=True``, the object some
engines return (``{"fromMe": true, "remote": …, "id": …, "_serialized": …}``), and records what
it accepted. Scripted failures answer with WAHA's (NestJS) error body.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import requests

from testkit import samples
from testkit.fakes import FakeServer, Reply


class FakeWaha(FakeServer):
    def __init__(
        self, api_key: str | None = "test-waha-key", id_as_object: bool = False, fetch_files: bool = False
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.id_as_object = id_as_object
        self.fetch_files = fetch_files
        self.files_received: list[bytes] = []  # each accepted send's file, fetched or decoded
        self.files: dict[str, tuple[bytes, str]] = {}  # /api/files/<name>: bytes, mime type
        # The id given to each accepted message, in order: what WAHA's message.any echoes carry.
        self.sent_ids: list[str] = []
        self.labels: dict[str, list[dict[str, Any]]] = {}  # session: its labels, as WAHA lists them
        self.chat_labels: dict[tuple[str, str], list[str]] = {}  # (session, chat id): label ids
        self.label_sets: list[tuple[str, str, list[str]]] = []  # every accepted PUT, in order
        # Called with (session, label) once a label is created and before WAHA answers: what a
        # test uses to deliver WAHA's label.upsert webhook ahead of the answer.
        self.on_label_created: Callable[[str, dict[str, Any]], None] | None = None

    def add_file(self, name: str, data: bytes, mime_type: str) -> str:
        """A file a chat received, as WAHA keeps it; returns its URL (the message's media.url)."""
        self.files[name] = (data, mime_type)
        return f"{self.root_url}/api/files/{name}"

    def reset(self) -> None:
        super().reset()
        self.files.clear()
        self.files_received.clear()
        self.sent_ids.clear()
        self.labels.clear()
        self.chat_labels.clear()
        self.label_sets.clear()
        self.on_label_created = None

    def add_label(self, session: str, label_id: str, name: str) -> None:
        """A label staff made in the app before (what ``GET /api/{session}/labels`` lists)."""
        self.labels.setdefault(session, []).append(_label(label_id, name))

    def label_puts(self) -> list[tuple[str, str, list[str]]]:
        """(session, chat id, label ids) of every accepted chat-labels PUT, in order."""
        return list(self.label_sets)

    def label_echo(self, session: str, chat_id: str, label_id: str, action: str, **envelope: Any) -> dict:
        """The ``label.chat.added``/``deleted`` envelope WAHA sends for a change made by a PUT."""
        [label] = [item for item in self.labels.get(session, []) if item["id"] == label_id]
        return samples.waha_label_chat(action, chat_id, label_id, label["name"], session=session, **envelope)

    def handle_put(self, path: str, headers: dict[str, str], body: Any) -> Reply:
        if self.api_key is not None and headers.get("x-api-key") != self.api_key:
            return Reply(401, _nest_error(401, "Unauthorized"))
        match = _CHAT_LABELS.fullmatch(path)
        if match is None:
            return Reply(404, _nest_error(404, f"Cannot PUT {path}"))
        action = self.next_action()
        if action is not None and action.kind == "fail":
            return Reply(action.status, _nest_error(action.status, "scripted failure"))
        labels = body.get("labels") if isinstance(body, dict) else None
        known = {item["id"] for item in self.labels.get(match["session"], [])}
        if not isinstance(labels, list) or not all(isinstance(i, dict) and "id" in i for i in labels):
            return Reply(400, _nest_error(400, "labels: a list of {id} is required"))
        unknown = [str(i["id"]) for i in labels if str(i["id"]) not in known]
        if unknown:
            return Reply(404, _nest_error(404, f"no label {unknown[0]}"))
        self.accept(body)
        chat, ids = unquote(match["chat"]), [str(i["id"]) for i in labels]
        self.chat_labels[(match["session"], chat)] = ids
        self.label_sets.append((match["session"], chat, ids))
        return Reply(200, {"success": True})

    def echo_of(self, index: int, source: str = "api", **envelope: Any) -> dict:
        """The ``message.any`` envelope WAHA sends for the ``index``-th accepted message: the
        same id as the send's answer, ``fromMe: true``, ``source: "api"`` (``"app"``: as NOWEB
        wrongly says of API sends, devlikeapro/waha#1689)."""
        body = self.accepted[index]
        return samples.waha_message_any(
            body["chatId"], body["text"], id=self.sent_ids[index], source=source, **envelope
        )

    def handle_get(self, path: str, headers: dict[str, str]) -> Reply:
        if self.api_key is not None and headers.get("x-api-key") != self.api_key:
            return Reply(401, _nest_error(401, "Unauthorized"))
        listing = _LABELS.fullmatch(path)
        if listing is not None:
            return Reply(200, self.labels.get(listing["session"], []))
        found = self.files.get(path.removeprefix("/api/files/")) if path.startswith("/api/files/") else None
        if found is None:
            return Reply(404, _nest_error(404, f"Cannot GET {path}"))
        return Reply(200, found[0], content_type=found[1])

    @property
    def url(self) -> str:
        """What ``WAHA_URL`` would be."""
        return self.root_url

    def __enter__(self) -> FakeWaha:
        return self

    def sessions(self) -> list[str]:
        """The session of every accepted message, in order."""
        return [body["session"] for body in self.accepted]

    def sent(self) -> list[tuple[str, dict[str, Any]]]:
        """(endpoint, body) of every accepted message, in order: ("sendImage", {...})."""
        accepted = [r for r in self.requests if r["path"] in _SENDS and r["body"] in self.accepted]
        return [(r["path"].removeprefix("/api/"), r["body"]) for r in accepted]

    def handle(self, path: str, headers: dict[str, str], body: Any) -> Reply:
        listing = _LABELS.fullmatch(path)
        if listing is not None:
            return self._create_label(listing["session"], headers, body)
        if path not in _SENDS:
            return Reply(404, _nest_error(404, f"Cannot POST {path}"))
        if self.api_key is not None and headers.get("x-api-key") != self.api_key:
            return Reply(401, _nest_error(401, "Unauthorized"))
        action = self.next_action()
        if action is not None and action.kind == "fail":
            return Reply(action.status, _nest_error(action.status, "scripted failure"))
        if not (
            isinstance(body, dict)
            and isinstance(body.get("session"), str)
            and isinstance(body.get("chatId"), str)
            and body["chatId"].endswith("@c.us")
        ):
            return Reply(400, _nest_error(400, "session and chatId (…@c.us) are required"))
        problem = _SENDS[path](body)
        if problem:
            return Reply(400, _nest_error(400, problem))
        file = body.get("file")
        content: bytes | None = None
        if isinstance(file, dict) and "data" in file:
            if "content-length" not in headers or "transfer-encoding" in headers:
                return Reply(411, _nest_error(411, "a file's data needs a Content-Length"))
            try:
                content = base64.b64decode(file["data"], validate=True)
            except (binascii.Error, TypeError, ValueError):
                return Reply(400, _nest_error(400, "file.data is not base64"))
        elif isinstance(file, dict) and self.fetch_files:
            content, failed = _fetch(str(file["url"]))
            if content is None:
                return Reply(500, _waha_500(path, body, failed))
        self.accept(body)
        if content is not None:
            self.files_received.append(content)
        key = uuid.uuid4().hex.upper()[:20]
        serialized = f"true_{body['chatId']}_{key}"
        self.sent_ids.append(serialized)
        message_id: Any = (
            {"fromMe": True, "remote": body["chatId"], "id": key, "_serialized": serialized}
            if self.id_as_object
            else serialized
        )
        answer = {
            "id": message_id,
            "fromMe": True,
            "to": body["chatId"],
            "body": body.get("text", ""),
            "ack": 1,
        }
        if action is not None and action.kind == "drop":
            return Reply(201, drop=True)
        if action is not None and action.kind == "accept_fail":
            return Reply(action.status, b"Bad Gateway", content_type="text/html")  # a proxy's own
        return Reply(201, answer, delay=action.seconds if action is not None else 0.0)

    def _create_label(self, session: str, headers: dict[str, str], body: Any) -> Reply:
        if self.api_key is not None and headers.get("x-api-key") != self.api_key:
            return Reply(401, _nest_error(401, "Unauthorized"))
        action = self.next_action()
        if action is not None and action.kind == "fail":
            return Reply(action.status, _nest_error(action.status, "scripted failure"))
        if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"]:
            return Reply(400, _nest_error(400, "name is required"))
        labels = self.labels.setdefault(session, [])
        label = _label(str(max((int(item["id"]) for item in labels), default=0) + 1), body["name"])
        labels.append(label)
        if self.on_label_created is not None:
            self.on_label_created(session, label)
        return Reply(201, label)


_LABELS = re.compile(r"/api/(?P<session>[^/]+)/labels")
_CHAT_LABELS = re.compile(r"/api/(?P<session>[^/]+)/labels/chats/(?P<chat>[^/]+)")


def _label(label_id: str, name: str) -> dict[str, Any]:
    return {"id": label_id, "name": name, "color": 0, "colorHex": "#ff9485"}


def _fetch(url: str) -> tuple[bytes | None, dict[str, Any]]:
    """The file at ``url`` as WAHA's ``fetchBuffer`` downloads it (axios, no redirects), or the
    ``AxiosError`` WAHA's exception filter would show: its message and code."""
    try:
        answer = requests.get(url, timeout=5, allow_redirects=False)
    except requests.ConnectionError:
        return None, {
            "message": f"connect ECONNREFUSED {url.split('/')[2]}",
            "code": "ECONNREFUSED",
        }
    except requests.Timeout:
        return None, {"message": "timeout of 30000ms exceeded", "code": "ECONNABORTED"}
    if not 200 <= answer.status_code < 300:
        code = "ERR_BAD_REQUEST" if answer.status_code < 500 else "ERR_BAD_RESPONSE"
        return None, {"message": f"Request failed with status code {answer.status_code}", "code": code}
    return answer.content, {}


def _waha_500(path: str, body: dict[str, Any], failed: dict[str, Any]) -> dict[str, Any]:
    """WAHA's AllExceptionsFilter answer to an error that is not an HttpException."""
    exception = {
        "message": failed["message"],
        "name": "AxiosError",
        "code": failed["code"],
        "stack": f"AxiosError: {failed['message']}\n    at fetchBuffer (/app/dist/utils/fetch.js)",
    }
    return {
        "statusCode": 500,
        "timestamp": "2026-01-01T00:00:00.000Z",
        "exception": exception,
        "request": {"path": path, "method": "POST", "body": body, "query": {}},
        "version": {"version": "2025.11.1", "engine": "GOWS", "tier": "PLUS"},
    }


def _nest_error(status: int, message: str) -> dict[str, Any]:
    return {"statusCode": status, "message": message, "error": HTTPStatus(status).phrase}


def _text(body: dict[str, Any]) -> str | None:
    return None if isinstance(body.get("text"), str) else "text is required"


def _file(body: dict[str, Any]) -> str | None:
    """WAHA's RemoteFile ``{mimetype, url}`` or BinaryFile ``{mimetype, data}`` (formats-rich.md 6.7)."""
    file = body.get("file")
    if not isinstance(file, dict) or not isinstance(file.get("mimetype"), str):
        return "file.mimetype is required"
    return None if ("url" in file) != ("data" in file) else "file needs exactly one of url or data"


def _location(body: dict[str, Any]) -> str | None:
    ok = all(isinstance(body.get(k), int | float) for k in ("latitude", "longitude"))
    return None if ok else "latitude and longitude are required"


_SENDS = {
    "/api/sendText": _text,
    "/api/sendImage": _file,
    "/api/sendFile": _file,
    "/api/sendVideo": _file,
    "/api/sendVoice": _file,
    "/api/sendLocation": _location,
}
