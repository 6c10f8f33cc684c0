"""A fake Meta Cloud API: ``POST /{version}/{phone_number_id}/messages`` as in docs/formats.md "Cloud API".

It checks the Bearer token (401, Graph code 190, when wrong; with ``numbers``, several phone
number ids each with its own token, as several channels of one install), answers a valid send with a fresh
``wamid.…`` and records it as accepted. ``fail_next(status, code)`` answers with a Graph error
envelope carrying ``code``; with ``code=None`` it answers a bare text body, as a proxy or load
balancer in front of the Graph API would. ``accept_then_fail_next(502)`` accepts the message and
still answers such a bare error: Meta got it, the proxy lost the answer.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from testkit.fakes import Action, FakeServer, Reply

_PATH = re.compile(r"/(?P<version>v\d+(?:\.\d+)?)/(?P<phone_number_id>[^/]+)/messages")


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

    @property
    def base_url(self) -> str:
        """What ``WHATSAPP_API_BASE`` would be: ``http://127.0.0.1:PORT/v21.0``."""
        return f"{self.root_url}/{self.version}"

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.sent_from.clear()
            self.sent_bodies.clear()

    def __enter__(self) -> FakeCloudApi:
        return self

    def handle(self, path: str, headers: dict[str, str], body: Any) -> Reply:
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
    return "type"
