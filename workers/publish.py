"""Putting inbox events on the ingest queue, by task name.

Producers and the sweeper publish through this module, so the API process never imports the
worker steps; ``task_routes`` in celeryconfig sends the task to the ``ingest`` queue.
"""

from __future__ import annotations

from workers.celery_app import app

PROCESS_INBOX_EVENT = "workers.ingest.process_inbox_event"


def enqueue(event_ids: list[int]) -> None:
    """Publish one task per inbox event. Raises if the broker cannot be reached."""
    for event_id in event_ids:
        app.send_task(PROCESS_INBOX_EVENT, args=(event_id,))


EXPAND_BROADCAST = "workers.broadcasts.expand_broadcast"


def expand_broadcast(broadcast_id: int) -> None:
    """Publish the task that turns a broadcast into outbox rows. Raises if the broker is away."""
    app.send_task(EXPAND_BROADCAST, args=(broadcast_id,))


ROUTE_MESSAGE = "workers.routing.route_message"
ANSWER_WITH_AI = "workers.ai_agent.answer_with_ai"


def route_messages(message_ids: list[int]) -> None:
    """Publish one routing task per inbound message (queue ``routing``)."""
    for message_id in message_ids:
        app.send_task(ROUTE_MESSAGE, args=(message_id,))


def answer_with_ai(decision_ids: list[int]) -> None:
    """Publish the AI agent's task for routing decisions that wait for it (queue ``routing``)."""
    for decision_id in decision_ids:
        app.send_task(ANSWER_WITH_AI, args=(decision_id,))
