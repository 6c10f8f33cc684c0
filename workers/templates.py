"""Syncing each WABA's message templates from the Graph API (pipeline/templates.py stores them)."""

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
    with session_scope() as session:
        accounts = templates.accounts(session)
    if not accounts:
        return "not configured"  # no WABA id: WHATSAPP_WABA_ID, or a Cloud API channel's waba_id
    outcome = "synced"
    for account in accounts:
        try:
            found = list_templates(
                settings.whatsapp_api_base,
                account.access_token,
                account.waba_id,
                settings.outbound_timeout_seconds,
            )
        except GatewayError as exc:
            # Beat asks again at the next interval; the templates we hold stay as they are.
            log.warning("template sync failed", extra={"waba_id": account.waba_id, "error": str(exc)})
            outcome = "failed"
            continue
        with session_scope() as session:
            held = templates.replace_from_sync(session, account.waba_id, found)
        log.info("templates synced", extra={"waba_id": account.waba_id, "templates": held})
    return outcome
