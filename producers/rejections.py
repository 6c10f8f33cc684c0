"""Refusing a request: one error shape (``{"error", "field"}``) and one metric for all producers."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from observability.metrics import EVENTS_REJECTED


class Rejected(Exception):
    """Raised by a producer to refuse a request; nothing has been stored when it is raised."""

    def __init__(self, status: int, error: str, *, field: str | None = None, reason: str = "invalid"):
        super().__init__(error)
        self.status, self.error, self.field, self.reason = status, error, field, reason


async def rejected_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Rejected)
    source = request.url.path.rstrip("/").rsplit("/", 1)[-1]
    EVENTS_REJECTED.labels(source, exc.reason).inc()
    body: dict[str, str] = {"error": exc.error}
    if exc.field:
        body["field"] = exc.field
    return JSONResponse(body, status_code=exc.status)
