"""The WAHA gateway: a WhatsApp Business *app* session driven through WAHA's REST API.

A linked app session has no 24-hour customer-service window and no templates, so every message
goes as free text and ``window_open`` is ignored. Network failures are classified exactly as for
the Cloud API (``http.network_error``); WAHA has no error codes worth keying on, so its answers
are judged by HTTP status (``http.status_error``): 502 and 504 from a proxy are unconfirmed, 429
and other 5xx may pass later, any other refusal will not.
"""

from __future__ import annotations

from typing import Any

import requests

from integrations.whatsapp.base import OutgoingMessage, Sent, Unconfirmed, digits
from integrations.whatsapp.http import json_or_none, post_json, status_error


class WahaGateway:
    """Sends with ``POST {url}/api/sendText`` to ``<digits>@c.us`` in one WAHA session."""

    name = "waha"

    def __init__(self, url: str, api_key: str | None, session: str | None, timeout: float) -> None:
        self.url = f"{url.rstrip('/')}/api/sendText"
        self.session_name = session or "default"
        self.timeout = timeout
        self._headers = {"X-Api-Key": api_key} if api_key else {}
        self._session = requests.Session()

    def send(self, message: OutgoingMessage, *, window_open: bool) -> Sent:
        body = {"session": self.session_name, "chatId": f"{digits(message.to)}@c.us", "text": message.text}
        response = post_json(
            self._session, self.url, body, headers=self._headers, timeout=self.timeout, gateway=self.name
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
        return Sent(external_id=external_id, type="text", request=body)

    def close(self) -> None:
        self._session.close()


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
