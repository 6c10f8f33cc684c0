"""Meta's Conversions API for business messaging: ``POST /{dataset_id}/events`` on the Graph API
(docs/formats-rich.md section 7 in the shared spec; docs/campaigns.md).

One event per request, so one refusal never holds back another. What the answer means is decided
here: a network failure, a 5xx, 429 or a Graph throttling code may succeed later (``Transient``);
anything else Meta refused is ``Permanent``. A resent event is harmless: Meta deduplicates on
``event_id``.
"""

from __future__ import annotations

from typing import Any

import requests

# Graph codes that mean "later": unknown/unavailable service, too many calls, rate limits.
TRANSIENT_CODES = frozenset({1, 2, 4, 17, 32, 341, 613, 80007})


class ConversionsError(Exception):
    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def event(
    name: str, event_id: str, event_time: int, waba_id: str | None, ctwa_clid: str, **custom: Any
) -> dict[str, Any]:
    """One server event with ``action_source`` business_messaging, as Meta documents it."""
    body: dict[str, Any] = {
        "event_name": name,
        "event_time": event_time,
        "event_id": event_id,
        "action_source": "business_messaging",
        "messaging_channel": "whatsapp",
        "user_data": {"whatsapp_business_account_id": waba_id, "ctwa_clid": ctwa_clid},
    }
    if custom:
        body["custom_data"] = custom
    return body


def send(base: str, dataset_id: str, token: str, payload: dict[str, Any], timeout: float) -> None:
    """Send one event; raise ConversionsError when Meta did not take it."""
    try:
        answer = requests.post(
            f"{base.rstrip('/')}/{dataset_id}/events",
            json={"data": [payload]},
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )
    except requests.RequestException as exc:
        raise ConversionsError(f"no answer: {type(exc).__name__}", transient=True) from exc
    if answer.status_code < 300:
        return
    try:
        error = answer.json().get("error") or {}
    except ValueError:
        error = {}
    code = error.get("code")
    message = f"HTTP {answer.status_code}: {str(error.get('message') or answer.text)[:300]}"
    transient = code in TRANSIENT_CODES or (
        code is None and (answer.status_code >= 500 or answer.status_code == 429)
    )
    raise ConversionsError(message, transient=transient)
