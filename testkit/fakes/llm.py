"""A fake OpenAI-compatible server: ``POST /v1/chat/completions`` as OpenAI answers it.

It checks the Bearer key when one is configured (401 in OpenAI's error envelope otherwise),
checks that the body has a model and messages (400), records every request, and answers a
``chat.completion`` whose ``choices[0].message.content`` is the scripted answer:
``answer_with(reply, confidence, handoff)`` for the JSON the client asks for (by default a polite
Indonesian reply rated 0.9), ``answer_raw(content)`` for any content string (prose, fenced JSON,
broken JSON). The scripted answer stays until changed; ``reset()`` restores the default.

Failures as for every fake: ``fail_next(status)`` answers an OpenAI error envelope (429 as a rate
limit with ``Retry-After``, 5xx as a server error), ``delay_next(seconds)`` answers late,
``drop_next()`` hangs up; and ``trickle_next(seconds)`` sends the headers at once and then the
body a byte at a time, spread over ``seconds`` (a read timeout alone never trips on it).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from testkit.fakes import Action, FakeServer, Reply

PATH = "/v1/chat/completions"
DEFAULT_REPLY = "Halo kak, terima kasih sudah menghubungi kami! Ada yang bisa kami bantu?"


def openai_error(message: str, type_: str, code: str | None) -> dict[str, Any]:
    """OpenAI's error envelope."""
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def answer_json(reply: str = DEFAULT_REPLY, confidence: float = 0.9, handoff: bool = False) -> str:
    """The content the client asks the model for."""
    return json.dumps({"reply": reply, "confidence": confidence, "handoff": handoff}, ensure_ascii=False)


@dataclass(frozen=True)
class Trickle(Reply):
    over: float = 0.0  # seconds over which the body is sent, a byte at a time


class FakeLlm(FakeServer):
    def __init__(self, api_key: str | None = "test-ai-key", model: str = "fake-gpt-4o-mini") -> None:
        self.api_key = api_key
        self.model = model
        self._content = answer_json()
        self._trickles: list[float] = []
        self._answers = threading.Lock()
        super().__init__()
        self._server.RequestHandlerClass = _trickling(self._server.RequestHandlerClass)

    @property
    def base_url(self) -> str:
        """What ``AI_BASE_URL`` would be: ``http://127.0.0.1:PORT/v1``."""
        return f"{self.root_url}/v1"

    def __enter__(self) -> FakeLlm:
        return self

    # --- what the tests use ------------------------------------------------------------------

    def answer_with(self, reply: str = DEFAULT_REPLY, confidence: float = 0.9, handoff: bool = False) -> None:
        """Answer every following request with this JSON content."""
        self.answer_raw(answer_json(reply, confidence, handoff))

    def answer_raw(self, content: str) -> None:
        """Answer every following request with ``content`` as the message content, as it is."""
        with self._answers:
            self._content = content

    def trickle_next(self, seconds: float) -> None:
        """Send the next answer's body a byte at a time over ``seconds``."""
        with self._answers:
            self._trickles.append(seconds)

    def reset(self) -> None:
        """Forget every request and script; answer the default reply again."""
        super().reset()
        with self._answers:
            self._content = answer_json()
            self._trickles.clear()

    def messages(self, index: int = -1) -> list[dict[str, Any]]:
        """The ``messages`` of a recorded request (the last one by default)."""
        return self.requests[index]["body"]["messages"]

    # --- the protocol ------------------------------------------------------------------------

    def handle(self, path: str, headers: dict[str, str], body: Any) -> Reply:
        if path != PATH:
            return Reply(404, openai_error(f"Invalid URL (POST {path})", "invalid_request_error", None))
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            # Like OpenAI, the message shows part of the key it got: a client must not copy it.
            given = headers.get("authorization", "")[len("Bearer ") :]
            message = f"Incorrect API key provided: {given[:3]}***{given[-4:]}."
            return Reply(401, openai_error(message, "invalid_request_error", "invalid_api_key"))
        action = self.next_action()
        if action is not None and action.kind == "fail":
            return _failure(action)
        problem = _invalid(body)
        if problem:
            return Reply(400, openai_error(problem, "invalid_request_error", None))
        self.accept(body)
        with self._answers:
            content = self._content
            trickle = self._trickles.pop(0) if self._trickles else None
        answer = self._completion(content, body)
        if action is not None and action.kind == "drop":
            return Reply(200, drop=True)
        if trickle is not None:
            return Trickle(200, answer, over=trickle)
        return Reply(200, answer, delay=action.seconds if action is not None else 0.0)

    def _completion(self, content: str, body: dict[str, Any]) -> dict[str, Any]:
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body["messages"])
        completion_tokens = len(content.split())
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            "system_fingerprint": "fp_fake",
        }


def _failure(action: Action) -> Reply:
    headers = {"Retry-After": f"{action.retry_after:g}"} if action.retry_after is not None else {}
    if action.status == 429:
        headers.setdefault("Retry-After", "1")
        body = openai_error("Rate limit reached for requests", "requests", "rate_limit_exceeded")
    elif action.status >= 500:
        body = openai_error("The server had an error while processing your request.", "server_error", None)
    else:
        body = openai_error("scripted failure", "invalid_request_error", None)
    return Reply(action.status, body, headers)


def _invalid(body: Any) -> str | None:
    """What OpenAI would refuse in a chat-completions body, or None."""
    if not isinstance(body, dict):
        return "We could not parse the JSON body of your request."
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "you must provide a model parameter"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array"
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("system", "user", "assistant"):
            return f"Invalid value for 'messages[{index}].role'"
        if not isinstance(message.get("content"), str):
            return f"Invalid type for 'messages[{index}].content'"
    format_ = body.get("response_format")
    if format_ is not None and format_ != {"type": "json_object"} and format_ != {"type": "text"}:
        return "Invalid value for 'response_format'"
    if format_ == {"type": "json_object"} and not any("json" in m["content"].lower() for m in messages):
        # OpenAI's own rule for JSON mode.
        return "'messages' must contain the word 'json' in some form, to use 'response_format' json_object"
    return None


def _trickling(base: type[BaseHTTPRequestHandler]) -> type[BaseHTTPRequestHandler]:
    """The shared handler, able to send a ``Trickle`` body slowly."""

    class Handler(base):  # type: ignore[misc, valid-type]
        def _answer(self, reply: Reply) -> None:
            if not isinstance(reply, Trickle):
                super()._answer(reply)  # type: ignore[misc]
                return
            payload = json.dumps(reply.body).encode()
            pause = reply.over / max(1, len(payload))
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                for byte in payload:
                    self.wfile.write(bytes([byte]))
                    time.sleep(pause)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up: what a deadline is for

    return Handler
