"""The two kinds of task, each with its retry policy written once.

- ``event_task``: work for one event or row (ingest, routing, sends, CRM sync, broadcast
  expansion). A database outage (``OperationalError``) is retried with capped exponential
  backoff and jitter, for as long as it lasts: the event is already stored and must not be
  dropped. Every such task is idempotent, so a retry or a redelivery changes nothing twice.
  Failures of the outside world (a gateway, the CRM) are not retried here: each task records
  them on its row and schedules its own retry, because only it knows whether a request left.
- ``periodic_task``: beat's ticks and sweepers. Never retried: the next tick does the same work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Task
from sqlalchemy.exc import OperationalError

from queueing.app import app

RETRY_BACKOFF_MAX_SECONDS = 60


class EventTask(Task):
    autoretry_for = (OperationalError,)
    retry_backoff = True
    retry_backoff_max = RETRY_BACKOFF_MAX_SECONDS
    retry_jitter = True
    max_retries = None


def event_task(name: str, **options: Any) -> Callable[[Callable[..., Any]], Task]:
    """Register an event task under ``name`` (a constant of queueing/names.py); ``options`` are
    Celery's (``bind=True`` for a task that schedules its own retry)."""
    return app.task(name=name, base=EventTask, **options)


def periodic_task(name: str) -> Callable[[Callable[..., Any]], Task]:
    """Register one of beat's tasks under ``name`` (a constant of queueing/names.py)."""
    return app.task(name=name)
