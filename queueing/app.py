"""The one Celery app, shared by producers (to publish), workers and beat.

Importing it loads no task: the task modules are listed in ``celeryconfig.imports`` and only
worker and beat processes (``celery -A workers``) import them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Celery, signals

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
