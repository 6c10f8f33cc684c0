"""A bench-only no-op task on the project's Celery app, routed to its own queue ``bench``.

Loaded into a worker with ``celery -A workers worker -I bench.noop -Q bench``; it measures what a
task costs Celery and the broker alone, with the project's settings (acks late, prefetch, JSON).
"""

from __future__ import annotations

from queueing.app import app

QUEUE = "bench"


@app.task(name="bench.noop.noop", queue=QUEUE)
def noop() -> None:
    """Nothing at all."""
