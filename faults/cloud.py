"""The tests' fake Cloud API, remembering for each message it accepted the id it answered with.

Meta sends status webhooks for the messages it accepted, echoing our ``biz_opaque_callback_data``
(``outbox:<id>``); the traffic generator does the same with what this fake recorded, including
for messages whose answer never reached the worker (a read timeout, a hang-up): those are the
ones a status webhook confirms after the fact.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from testkit.fakes import Reply
from testkit.fakes.cloud_api import FakeCloudApi

FOLLOWUP_TEMPLATE = "order_delivery_followup"
FOLLOWUP_TEXT = "dijadwalkan tiba"  # in the default texts (templates/order_messages.toml)


@dataclass(frozen=True)
class Send:
    """One message the fake accepted: what a customer's phone would show."""

    wamid: str
    callback: str | None  # "outbox:<id>"
    to: str
    at: float
    followup: bool  # the delivery follow-up ("has your order arrived?")
    answered: bool  # False when the fake answered too late or hung up (scripted)


class RecordingCloudApi(FakeCloudApi):
    def __init__(self) -> None:
        super().__init__()
        self.sends: list[Send] = []
        self.attempts = 0  # every send request that passed authentication
        self._sends_lock = threading.Lock()

    def handle(self, path: str, headers: dict[str, str], body: Any) -> Reply:
        accepted_before = len(self.accepted)
        reply = super().handle(path, headers, body)
        with self._sends_lock:
            self.attempts += 1
        if len(self.accepted) == accepted_before or reply.status != 200:
            return reply
        # A hang-up after accepting: Meta still has the message, under an id of its own.
        wamid = f"wamid.{uuid.uuid4().hex.upper()}" if reply.drop else reply.body["messages"][0]["id"]
        template = (body.get("template") or {}).get("name")
        text = (body.get("text") or {}).get("body") or ""
        with self._sends_lock:
            self.sends.append(
                Send(
                    wamid=wamid,
                    callback=body.get("biz_opaque_callback_data"),
                    to=body["to"],
                    at=time.time(),
                    followup=template == FOLLOWUP_TEMPLATE or FOLLOWUP_TEXT in text,
                    answered=not reply.drop and not reply.delay,
                )
            )
        return reply

    def snapshot(self) -> list[Send]:
        with self._sends_lock:
            return list(self.sends)

    def env(self) -> dict[str, str]:
        """Settings that send through the real Cloud API client to this fake."""
        return {
            "WHATSAPP_GATEWAY": "cloud",
            "WHATSAPP_API_BASE": self.base_url,
            "WHATSAPP_ACCESS_TOKEN": self.access_token,
            "WHATSAPP_PHONE_NUMBER_ID": self.phone_number_id,
        }
