"""The Meta WhatsApp Cloud API gateway: one POST to ``/{phone_number_id}/messages`` per send.

Two things decide whether a failed send may be repeated, and both are settled here so the
outbound worker only looks at the class of the error (see ``base``):

- What the Graph API said. Its JSON error envelope carries ``error.code``; Meta asks to key on
  the code rather than the HTTP status (shared spec, formats.md 2.5), so the status is only a
  fallback when no code can be read.
- Whether the request left this machine. ``requests`` reports a refused connection and a
  connection dropped after the request was written as the same ``ConnectionError``; only the
  urllib3 exception underneath tells them apart, and only the first is safe to send again.

The HTTP plumbing (``post_json``, ``network_error``, ``retry_after``) is shared with the WAHA
gateway, and the body builder (``cloud_request_body``) with the sandbox, which must answer the
way production would.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import requests
import urllib3.exceptions

from integrations.whatsapp.base import (
    BlockedWindow,
    GatewayError,
    OutgoingMessage,
    PermanentError,
    Sent,
    TransientError,
    Unconfirmed,
)

# Connect timeout: slightly above a multiple of 3 s, the TCP retransmission window (requests docs).
CONNECT_TIMEOUT_SECONDS = 3.05

# Graph error codes after which the same request may succeed later (formats.md 2.5): throughput,
# pair rate, upgrade/maintenance, app and WABA rate limits, unknown/unavailable service.
TRANSIENT_CODES = frozenset({130429, 131056, 131057, 4, 80007, 131000, 131016, 2, 1})
# Free-form message outside the 24-hour customer-service window: only a template can go.
REENGAGEMENT_CODE = 131047

# urllib3 errors raised before a single byte of the request was written (refused, DNS, connect
# timeout; NewConnectionError and NameResolutionError are subclasses of ConnectTimeoutError).
_NOT_SENT = (urllib3.exceptions.ConnectTimeoutError,)
# Mistakes in what we asked for (URL, headers, body), found before anything is sent.
_BAD_REQUEST = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidHeader,
    requests.exceptions.URLRequired,
    requests.exceptions.InvalidJSONError,
)


def digits(phone: str) -> str:
    """E.164 ``+6281212345678`` as the gateways want it: ``6281212345678``."""
    return "".join(ch for ch in phone if ch.isdigit())


def cloud_request_body(message: OutgoingMessage, *, window_open: bool) -> dict[str, Any]:
    """The Cloud API send body for ``message``: free text while the customer's 24-hour window is
    open, the approved template once it has closed. With the window closed and no template,
    nothing can be sent: ``BlockedWindow``, decided before any request is made."""
    common: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": digits(message.to),
    }
    if window_open:
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
    body["biz_opaque_callback_data"] = f"outbox:{message.outbound_id}"
    return body


def network_error(exc: requests.RequestException, gateway: str) -> GatewayError:
    """Classify a failed request by whether it may have reached the gateway.

    ConnectTimeout and errors whose cause chain holds a urllib3 connect error happened before
    the request was written: ``TransientError``. A read timeout, or a connection dropped or reset
    after connecting, may follow a request the gateway already accepted: ``Unconfirmed``. Bad URLs
    and other mistakes made before sending are ``PermanentError`` (configuration, not luck).
    """
    detail = f"{gateway}: {type(exc).__name__}: {exc}"
    error = {"message": detail}
    if isinstance(exc, requests.ConnectTimeout):
        return TransientError(detail, error=error)
    if isinstance(exc, requests.ReadTimeout):
        return Unconfirmed(detail, error=error)
    if isinstance(exc, requests.ConnectionError):
        if _caused_by(exc, _NOT_SENT):
            return TransientError(detail, error=error)
        return Unconfirmed(detail, error=error)
    if isinstance(exc, _BAD_REQUEST):
        return PermanentError(detail, error=error)
    # Anything else (a broken chunked answer, a body that will not decode) came after sending.
    return Unconfirmed(detail, error=error)


def _caused_by(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    """Whether ``kinds`` appears anywhere under ``exc``: in ``args`` (requests wraps urllib3's
    MaxRetryError there), in MaxRetryError's ``reason``, or in ``__cause__``/``__context__``."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kinds):
            return True
        linked = [*current.args, getattr(current, "reason", None), current.__cause__, current.__context__]
        stack.extend(item for item in linked if isinstance(item, BaseException))
    return False


def post_json(
    session: requests.Session,
    url: str,
    body: dict[str, Any],
    *,
    headers: dict[str, str],
    timeout: float,
    gateway: str,
) -> requests.Response:
    """POST ``body`` once (no retries, no redirects: retrying is the worker's decision, made with
    the error class); network failures come out as ``GatewayError``s, HTTP answers as they are."""
    try:
        return session.post(
            url,
            json=body,
            headers=headers,
            timeout=(CONNECT_TIMEOUT_SECONDS, timeout),
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise network_error(exc, gateway) from exc


def retry_after(response: requests.Response) -> float | None:
    """The ``Retry-After`` header in seconds (a number or an HTTP date), or None."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def status_error(response: requests.Response, gateway: str, error: dict[str, Any]) -> GatewayError:
    """An answer without a usable error code, judged by HTTP status: 429 and 5xx may pass, any
    other refusal will not."""
    message = f"{gateway}: HTTP {response.status_code}: {error.get('message', '')}"
    if response.status_code == 429 or response.status_code >= 500:
        return TransientError(message, error=error, retry_after=retry_after(response))
    return PermanentError(message, error=error)


def json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class CloudApiGateway:
    """Sends through ``{base_url}/{phone_number_id}/messages`` with one pooled HTTP session."""

    name = "cloud"

    def __init__(self, base_url: str, access_token: str, phone_number_id: str, timeout: float) -> None:
        self.url = f"{base_url.rstrip('/')}/{phone_number_id}/messages"
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
    return PermanentError(message, code=code, error=error)
