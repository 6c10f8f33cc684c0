"""HTTP plumbing shared by the gateways: one POST, and what a failed one means.

``requests`` reports a refused connection and a connection dropped after the request was
written as the same ``ConnectionError``; only the urllib3 exception underneath tells them apart,
and only the first is safe to send again (see ``base`` for the error classes).
"""

from __future__ import annotations

import email.utils
import time
from typing import Any

import requests

from integrations.network import never_sent
from integrations.whatsapp.base import GatewayError, PermanentError, Readable, TransientError, Unconfirmed

# Connect timeout: slightly above a multiple of 3 s, the TCP retransmission window (requests docs).
CONNECT_TIMEOUT_SECONDS = 3.05

# Mistakes in what we asked for (URL, headers, body), found before anything is sent.
_BAD_REQUEST = (
    requests.exceptions.InvalidURL,
    requests.exceptions.MissingSchema,
    requests.exceptions.InvalidSchema,
    requests.exceptions.InvalidHeader,
    requests.exceptions.URLRequired,
    requests.exceptions.InvalidJSONError,
)


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
        if never_sent(exc):
            return TransientError(detail, error=error)
        return Unconfirmed(detail, error=error)
    if isinstance(exc, _BAD_REQUEST):
        return PermanentError(detail, error=error)
    # Anything else (a broken chunked answer, a body that will not decode) came after sending.
    return Unconfirmed(detail, error=error)


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
    return request_json(session, "POST", url, body, headers=headers, timeout=timeout, gateway=gateway)


def request_json(
    session: requests.Session,
    method: str,
    url: str,
    body: dict[str, Any] | None,
    *,
    headers: dict[str, str],
    timeout: float,
    gateway: str,
) -> requests.Response:
    """One request of any method (a GET, a PUT), classified exactly as ``post_json``."""
    try:
        return session.request(
            method,
            url,
            json=body,
            headers=headers,
            timeout=(CONNECT_TIMEOUT_SECONDS, timeout),
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        raise network_error(exc, gateway) from exc


def post_stream(
    session: requests.Session,
    url: str,
    body: Readable,
    *,
    content_type: str,
    headers: dict[str, str],
    timeout: float,
    gateway: str,
) -> requests.Response:
    """POST a body read from a file object as it is sent (its ``len``: the Content-Length),
    classified exactly as ``post_json``."""
    try:
        return session.post(
            url,
            data=body,
            headers={**headers, "Content-Type": content_type},
            timeout=(CONNECT_TIMEOUT_SECONDS, timeout),
            allow_redirects=False,
        )
    except Exception as exc:
        store_error = getattr(body, "store_error", None)
        if store_error is not None:  # our file could not be read: the body was cut short, not sent
            detail = f"{gateway}: reading the stored file failed: {store_error}"
            raise TransientError(detail, error={"message": detail}) from exc
        if isinstance(exc, requests.RequestException):
            raise network_error(exc, gateway) from exc
        raise


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


# A proxy or load balancer in front of the gateway saying that it forwarded the request and got
# no usable answer (502 Bad Gateway, 504 Gateway Timeout): the gateway may well have accepted it.
FORWARDED_WITHOUT_ANSWER = frozenset({502, 504})


def status_error(response: requests.Response, gateway: str, error: dict[str, Any]) -> GatewayError:
    """An answer without a usable error code, judged by HTTP status: 502 and 504 are unconfirmed
    (the request went on to the gateway, whose answer was lost), 429 and any other 5xx may pass
    (whatever answered did not hand the request on: a gateway's own errors carry its error code),
    any other refusal will not."""
    message = f"{gateway}: HTTP {response.status_code}: {error.get('message', '')}"
    if response.status_code in FORWARDED_WITHOUT_ANSWER:
        return Unconfirmed(message, error={**error, "http_status": response.status_code})
    if response.status_code == 429 or response.status_code >= 500:
        return TransientError(message, error=error, retry_after=retry_after(response))
    return PermanentError(message, error=error)


def json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
