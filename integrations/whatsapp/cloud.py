"""The Meta WhatsApp Cloud API gateway: one POST to ``/{phone_number_id}/messages`` per send.

Two things decide whether a failed send may be repeated, and both are settled here so the
outbound worker only looks at the class of the error (see ``base``):

- What the Graph API said. Its JSON error envelope carries ``error.code``; Meta asks to key on
  the code rather than the HTTP status (docs/formats.md, Cloud API errors), so the status is only a
  fallback when no code can be read.
- Whether the request left this machine. ``requests`` reports a refused connection and a
  connection dropped after the request was written as the same ``ConnectionError``; only the
  urllib3 exception underneath tells them apart, and only the first is safe to send again.

The HTTP plumbing is in ``http`` (shared with the WAHA gateway); the body builder
(``cloud_request_body``) is shared with the sandbox, which must answer the way production would.
"""

from __future__ import annotations

from typing import Any

import requests
from requests_toolbelt import MultipartEncoder

from integrations.whatsapp.base import (
    Attachment,
    BlockedWindow,
    GatewayError,
    MediaRefused,
    OutgoingMessage,
    PermanentError,
    Sent,
    TransientError,
    Unconfirmed,
    digits,
)
from integrations.whatsapp.http import (
    CONNECT_TIMEOUT_SECONDS,
    json_or_none,
    network_error,
    post_json,
    retry_after,
    status_error,
)

# Graph error codes after which the same request may succeed later (docs/formats.md, Cloud API
# errors): throughput, pair rate, upgrade/maintenance, app and WABA rate limits, unknown/unavailable service.
TRANSIENT_CODES = frozenset({130429, 131056, 131057, 4, 80007, 131000, 131016, 2, 1})
# Free-form message outside the 24-hour customer-service window: only a template can go.
REENGAGEMENT_CODE = 131047
# "Media upload error": Meta cannot use the message's media id, as when an uploaded id has expired
# after its 30 days (formats-rich.md 1.9, 2.3): the file may be uploaded again.
MEDIA_REFUSED_CODE = 131053
# Sends carry ``biz_opaque_callback_data = "outbox:<id>"``; Meta echoes it in the status webhooks.
_CALLBACK_PREFIX = "outbox:"


def outbox_callback(outbound_id: int) -> str:
    """What a send carries so that its receipts name our outbox row."""
    return f"{_CALLBACK_PREFIX}{outbound_id}"


def outbox_id_from_callback(callback: object) -> int | None:
    """The outbox row a status webhook's ``biz_opaque_callback_data`` names, if it is ours."""
    if not isinstance(callback, str) or not callback.startswith(_CALLBACK_PREFIX):
        return None
    number = callback[len(_CALLBACK_PREFIX) :]
    return int(number) if number.isdigit() else None


def is_closed_window_error(error: dict[str, Any] | None) -> bool:
    """Whether a stored gateway error is Meta's "outside the 24-hour window" refusal."""
    return isinstance(error, dict) and error.get("code") == REENGAGEMENT_CODE


def cloud_request_body(message: OutgoingMessage, *, window_open: bool) -> dict[str, Any]:
    """The Cloud API send body for ``message``: free text while the customer's 24-hour window is
    open, the approved template once it has closed. With the window closed and no template,
    nothing can be sent: ``BlockedWindow``, decided before any request is made."""
    common: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": digits(message.to),
    }
    rich = message.body
    if rich is not None and (window_open or rich.get("type") == "template"):
        body = {**common, **rich}  # exactly the client's object: a template goes whatever the window
    elif rich is not None and message.template is None:
        raise BlockedWindow("the 24-hour window is closed and this message is not a template")
    elif window_open:
        body = {**common, "type": "text", "text": {"preview_url": False, "body": message.text}}
    elif message.template is not None:
        template: dict[str, Any] = {
            "name": message.template.name,
            "language": {"code": message.template.language},
        }
        if message.template.parameters:
            parameters = [{"type": "text", "text": value} for value in message.template.parameters]
            template["components"] = [{"type": "body", "parameters": parameters}]
        body = {**common, "type": "template", "template": template}
    else:
        raise BlockedWindow("the 24-hour window is closed and this message has no template")
    # Echoed back in status webhooks: ties a delivery receipt to our outbox row.
    body["biz_opaque_callback_data"] = outbox_callback(message.outbound_id)
    return body


class CloudApiGateway:
    """Sends through ``{base_url}/{phone_number_id}/messages`` with one pooled HTTP session."""

    name = "cloud"

    def __init__(self, base_url: str, access_token: str, phone_number_id: str, timeout: float) -> None:
        self.url = f"{base_url.rstrip('/')}/{phone_number_id}/messages"
        self.media_url = f"{base_url.rstrip('/')}/{phone_number_id}/media"
        self.timeout = timeout
        self._headers = {"Authorization": f"Bearer {access_token}"}
        self._session = requests.Session()

    def send(self, message: OutgoingMessage, *, window_open: bool) -> Sent:
        body = cloud_request_body(message, window_open=window_open)
        response = post_json(
            self._session, self.url, body, headers=self._headers, timeout=self.timeout, gateway=self.name
        )
        payload = json_or_none(response)
        if not 200 <= response.status_code < 300:
            raise _graph_error(response, payload)
        try:
            external_id = payload["messages"][0]["id"]
        except (KeyError, IndexError, TypeError):
            external_id = None
        if not isinstance(external_id, str) or not external_id:
            # Meta answered yes but said nothing we can join receipts with: it may well be sent.
            raise Unconfirmed(
                f"cloud: HTTP {response.status_code} without messages[0].id",
                error={"message": response.text[:500], "http_status": response.status_code},
            )
        return Sent(external_id=external_id, type=body["type"], request=body)

    def upload_media(self, attachment: Attachment) -> str:
        """``POST /{phone_number_id}/media`` (multipart: ``messaging_product``, ``type``, ``file``);
        the media id Meta answers. The file streams from the store, a chunk at a time. Nothing was
        sent to a customer, so any failure may be retried."""
        # requests would build the multipart body in memory (the whole file); the toolbelt's
        # encoder streams it from the store as the socket takes it, with its Content-Length.
        fields = {
            "messaging_product": "whatsapp",
            "type": attachment.mime_type,
            "file": (attachment.filename or "file", attachment.open(), attachment.mime_type),
        }
        body = MultipartEncoder(fields=fields)
        try:
            response = self._session.post(
                self.media_url,
                data=body,
                headers={**self._headers, "Content-Type": body.content_type},
                timeout=(CONNECT_TIMEOUT_SECONDS, self.timeout),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise network_error(exc, self.name) from exc
        payload = json_or_none(response)
        if not 200 <= response.status_code < 300:
            raise _graph_error(response, payload)
        media_id = payload.get("id") if isinstance(payload, dict) else None
        if not isinstance(media_id, str) or not media_id:
            raise TransientError(f"cloud: media upload answered HTTP {response.status_code} without an id")
        return media_id

    def close(self) -> None:
        self._session.close()


def _graph_error(response: requests.Response, payload: Any) -> GatewayError:
    """Map a Graph error answer to the worker's error classes, keyed on ``error.code``."""
    error = payload.get("error") if isinstance(payload, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    if not isinstance(error, dict) or not isinstance(code, int) or isinstance(code, bool):
        fallback = {"message": response.text[:500] or response.reason, "http_status": response.status_code}
        return status_error(response, "cloud", fallback)
    message = f"cloud: ({code}) {error.get('message', '')}"
    if code in TRANSIENT_CODES:
        return TransientError(message, code=code, error=error, retry_after=retry_after(response))
    if code == REENGAGEMENT_CODE:
        return BlockedWindow(message, code=code, error=error)
    if code == MEDIA_REFUSED_CODE:
        return MediaRefused(message, code=code, error=error)
    return PermanentError(message, code=code, error=error)
