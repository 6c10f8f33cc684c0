"""Bearer-token guard for /api and /dashboard: closed unless ADMIN_TOKEN is set."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request


def require_admin(request: Request) -> None:
    token: str | None = request.app.state.settings.admin_token
    if not token:
        raise HTTPException(503, "ADMIN_TOKEN is not set: the API stays closed until it is")
    if not is_admin(request):
        raise HTTPException(401, "a valid 'Authorization: Bearer <ADMIN_TOKEN>' header is required")


def is_admin(request: Request) -> bool:
    """Whether the request carries ADMIN_TOKEN (never while it is unset): for the answers that
    show operators more than anyone else, such as /readyz's error details."""
    token: str | None = request.app.state.settings.admin_token
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())
