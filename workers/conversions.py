"""Sending one Conversions API event (pipeline/conversions.py queues, claims and settles it)."""

from __future__ import annotations

import logging

from integrations import meta_conversions
from models.db import session_scope
from pipeline import conversions
from queueing import names
from queueing.tasks import event_task
from settings import settings

log = logging.getLogger(__name__)


@event_task(names.SEND_CONVERSION)
def send_conversion(event_row_id: int) -> str:
    with session_scope() as session:
        payload = conversions.claim(session, event_row_id)
    if payload is None:
        return "not due"  # sent already, failed for good, or another worker holds it
    token = settings.meta_conversions_token or settings.whatsapp_access_token
    dataset = settings.meta_conversions_dataset_id
    error, transient = None, False
    if not dataset or not token:
        error = "META_CONVERSIONS_DATASET_ID or the token (META_CONVERSIONS_TOKEN) is unset"
    else:
        try:
            meta_conversions.send(
                settings.meta_conversions_api_base or settings.whatsapp_api_base,
                dataset,
                token,
                payload,
                settings.outbound_timeout_seconds,
            )
        except meta_conversions.ConversionsError as exc:
            error, transient = str(exc), exc.transient
    with session_scope() as session:
        state = conversions.settle(session, event_row_id, error, transient)
    if error:
        log.warning("conversions API event not taken", extra={"event": event_row_id, "error": error})
    return state
