"""Syncing the WABA's message templates from the Graph API (pipeline/templates.py stores them)."""

from __future__ import annotations

import logging

from integrations.whatsapp.base import GatewayError
from integrations.whatsapp.templates import list_templates
from models.db import session_scope
from pipeline import templates
from queueing import names
from queueing.tasks import event_task
from settings import settings

log = logging.getLogger(__name__)


@event_task(names.SYNC_TEMPLATES)
def sync_templates() -> str:
    waba_id, token = settings.whatsapp_waba_id, settings.whatsapp_access_token
    if not waba_id or not token:
        return "not configured"  # WHATSAPP_WABA_ID or WHATSAPP_ACCESS_TOKEN unset
    try:
        found = list_templates(settings.whatsapp_api_base, token, waba_id, settings.outbound_timeout_seconds)
    except GatewayError as exc:
        # Beat asks again at the next interval; the templates we hold stay as they are.
        log.warning("template sync failed", extra={"error": str(exc)})
        return "failed"
    with session_scope() as session:
        held = templates.replace_from_sync(session, waba_id, found)
    log.info("templates synced", extra={"templates": held})
    return "synced"
