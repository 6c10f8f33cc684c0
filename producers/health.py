"""Liveness, readiness (names what is down) and Prometheus metrics.

``/readyz`` is open to load balancers and anyone else, so it says only which part is down; the
errors themselves (host names, ports, driver messages) only to a caller with ADMIN_TOKEN.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.auth import is_admin
from models.db import get_engine
from observability import metrics
from queueing.app import app as celery_app

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    problems = await run_in_threadpool(_problems)
    if not problems:
        return JSONResponse({"status": "ready"})
    body: dict[str, object] = {"status": "unavailable", "down": sorted(problems)}
    if is_admin(request):
        body["details"] = problems
    return JSONResponse(body, status_code=503)


def _problems() -> dict[str, str]:
    problems: dict[str, str] = {}
    try:
        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not ready"; its text says why
        problems["database"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    try:
        with celery_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        problems["broker"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return problems


@router.get("/metrics")
def prometheus_metrics() -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
