"""Reading a WhatsApp Business Account's message templates from the Graph API.

``GET /{waba_id}/message_templates?fields=…&limit=…`` answers ``{"data": [...], "paging":
{"cursors": {...}, "next": "<url>"}}``; every page is followed until there is no ``next``
(docs/formats.md, "Templates"). A ``next`` URL on another host than the API's is not followed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests

from integrations.whatsapp.base import PermanentError, TransientError
from integrations.whatsapp.http import CONNECT_TIMEOUT_SECONDS, network_error

FIELDS = "id,name,language,status,category,components,rejected_reason,quality_score"
PAGE_SIZE = 100
MAX_PAGES = 100  # 10,000 templates: far beyond Meta's per-WABA limit


def list_templates(base_url: str, access_token: str, waba_id: str, timeout: float) -> list[dict[str, Any]]:
    """Every template of the WABA, as the Graph API describes it."""
    url: str | None = f"{base_url.rstrip('/')}/{waba_id}/message_templates"
    params: dict[str, Any] | None = {"fields": FIELDS, "limit": PAGE_SIZE}
    host = urlsplit(base_url).hostname
    found: list[dict[str, Any]] = []
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {access_token}"
        for _ in range(MAX_PAGES):
            if url is None:
                break
            if urlsplit(url).hostname != host:
                raise PermanentError(
                    f"cloud: template paging points at another host ({urlsplit(url).hostname})"
                )
            page = _get(session, url, params, timeout)
            data = page.get("data")
            if not isinstance(data, list):
                raise PermanentError("cloud: the template list has no data")
            found.extend(item for item in data if isinstance(item, dict))
            url, params = (page.get("paging") or {}).get("next"), None  # next carries the cursor
    return found


def _get(
    session: requests.Session, url: str, params: dict[str, Any] | None, timeout: float
) -> dict[str, Any]:
    try:
        answer = session.get(
            url, params=params, timeout=(CONNECT_TIMEOUT_SECONDS, timeout), allow_redirects=False
        )
    except requests.RequestException as exc:
        raise TransientError(str(network_error(exc, "cloud"))) from exc
    try:
        payload = answer.json()
    except ValueError:
        payload = None
    if answer.status_code == 429 or answer.status_code >= 500:
        raise TransientError(f"cloud: template list answered {answer.status_code}")
    if answer.status_code != 200 or not isinstance(payload, dict):
        error = payload.get("error") if isinstance(payload, dict) else None
        detail = error.get("message") if isinstance(error, dict) else answer.text[:200]
        raise PermanentError(f"cloud: template list answered {answer.status_code}: {detail}", error=error)
    return payload
