"""``POST /webhooks/odoo/{secret}``: Odoo's own automation webhook (17+), as a wake-up only.

Odoo cannot sign its webhook, so the secret is in the path (``ODOO_WEBHOOK_SECRET``; a wrong or
unset secret answers 404, as an unknown path). Odoo waits about a second, never retries, and in
17/18 posts from inside the transaction that saves the record, so the record may not even be
committed yet: the body (``_model``, ``_id``) is only checked, never trusted, and the answer is
immediate. The read-back (``workers.crm.poll_odoo``, by ``write_date``) is published, and it
reads and reconciles what changed; beat runs it anyway every ODOO_POLL_SECONDS, so a webhook
that never came costs only that wait.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from producers.rejections import Rejected
from producers.security import parse_json, read_body
from queueing import publish
from settings import Settings

router = APIRouter(tags=["webhooks"])
log = logging.getLogger(__name__)

# What the read-back follows: leads (salesperson, stage), and the order steps.
MODELS = frozenset({"crm.lead", "sale.order", "account.move", "stock.picking"})


@router.post("/webhooks/odoo/{secret}")
async def receive(secret: str, request: Request) -> JSONResponse:
    settings: Settings = request.app.state.settings
    expected = settings.odoo_webhook_secret
    # Answered here, not through Rejected: its metric would be labelled with the path's end, the secret.
    if not expected or not settings.odoo_url or not hmac.compare_digest(secret.encode(), expected.encode()):
        return JSONResponse({"detail": "Not Found"}, status_code=404)
    try:
        document: Any = parse_json(await read_body(request, settings.max_body_bytes))
    except Rejected as exc:
        return JSONResponse({"error": exc.error}, status_code=exc.status)
    if not isinstance(document, dict) or document.get("_model") not in MODELS:
        error = f"expected an Odoo webhook of one of {', '.join(sorted(MODELS))}"
        return JSONResponse({"error": error, "field": "_model"}, status_code=400)
    record_id = document.get("_id")
    if isinstance(record_id, bool) or not isinstance(record_id, int):
        return JSONResponse({"error": "'_id' must be the record's id", "field": "_id"}, status_code=400)
    try:
        publish.poll_odoo()
    except Exception:  # the broker away: beat's read-back comes anyway
        log.warning("Odoo webhook: the read-back could not be published; beat's comes anyway", exc_info=True)
    return JSONResponse({"status": "ok", "model": document["_model"], "id": record_id})
