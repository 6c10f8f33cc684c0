"""Celery's entry point: ``celery -A workers worker|beat|flower`` finds ``app`` here.

The task modules (one per task family: ingest, routing, ai_agent, outbound, broadcasts, crm, and
beat's in ``schedules/``) are imported by Celery from ``celeryconfig.imports``, never by other
code: producers, the API and beat publish by name through ``queueing.publish``. Importing this
package also connects the start-up checks that stop a worker or beat on a broken configuration.
"""

from __future__ import annotations

from typing import Any

from celery import signals

from domain import automation_content, business_hours, order_messages
from domain.followup_time import check_cron
from integrations.ai import ai_for
from integrations.whatsapp import gateway_for
from pipeline import live
from queueing.app import app
from settings import settings

__all__ = ["app"]

# What the workers and beat record is announced to the inbox pages after each commit.
live.install()


@signals.worker_init.connect
@signals.beat_init.connect
def _check_content(**_: Any) -> None:
    # A broken messages file, business hours or cron stops the process at start, not on a customer's phone.
    # SystemExit, because Celery logs and swallows a signal handler's ordinary exceptions.
    try:
        order_messages.templates_from(settings.order_messages_file)
        automation_content.messages_from(settings.automation_file)
        business_hours.parse(settings.business_hours)
        check_cron(settings.followup_cron)
    except ValueError as exc:
        raise SystemExit(f"configuration error: {exc}") from exc


@signals.worker_init.connect
def _check_gateway(**_: Any) -> None:
    # Missing gateway credentials stop the worker at start, naming the setting, rather than
    # failing every send later.
    try:
        gateway_for(settings)
        ai_for(settings)
    except ValueError as exc:
        raise SystemExit(f"configuration error: {exc}") from exc
