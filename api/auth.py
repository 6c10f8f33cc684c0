"""Bearer-token guard for /api and /dashboard: closed unless ADMIN_TOKEN is set."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request


def require_admin(request: Request) -> None:
    token: str | None = request.app.state.settings.admin_token
    if not token:
        raise HTTPException(503, "ADMIN_TOKEN is not set: the API stays closed until it is")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
        raise HTTPException(401, "a valid 'Authorization: Bearer <ADMIN_TOKEN>' header is required")
