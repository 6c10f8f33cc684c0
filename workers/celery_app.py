"""The one Celery app, shared by producers (to publish), workers and beat."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Celery, signals

from domain import automation_content, business_hours, order_messages
from domain.followup_time import check_cron
from integrations.ai import ai_for
from integrations.whatsapp import gateway_for
from models.db import dispose_engine
from observability.logs import configure_logging
from settings import settings

app = Celery("workers")
app.config_from_object("celeryconfig")

if settings.celery_broker_url.startswith("filesystem"):
    # The embedded broker's folders must exist before any process publishes or consumes.
    for key in ("data_folder_in", "control_folder"):
        Path(app.conf.broker_transport_options[key]).mkdir(parents=True, exist_ok=True)


@signals.setup_logging.connect
def _json_logs(**_: Any) -> None:
    configure_logging(settings.log_level)


@signals.worker_process_init.connect
def _own_connections(**_: Any) -> None:
    # A forked child must not reuse the parent's pooled database connections.
    dispose_engine()


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
