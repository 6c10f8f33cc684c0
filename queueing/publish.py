"""Publishing tasks by name (queueing/names.py), for any process.

Producers, the API, beat and the pipeline's after-commit hooks publish through these functions,
so none of them imports a task module; ``task_routes`` in celeryconfig picks the queue. Each
raises if the broker cannot be reached: callers publish after their commit, and a sweeper
publishes again whatever a failed publish left waiting.
"""

from __future__ import annotations

from queueing import names
from queueing.app import app


def enqueue(event_ids: list[int]) -> None:
    """One ingest task per inbox event."""
    for event_id in event_ids:
        app.send_task(names.PROCESS_INBOX_EVENT, args=(event_id,))


def route_messages(message_ids: list[int]) -> None:
    """One routing task per inbound message (queue ``routing``)."""
    for message_id in message_ids:
        app.send_task(names.ROUTE_MESSAGE, args=(message_id,))


def answer_with_ai(decision_ids: list[int]) -> None:
    """The AI agent's task for routing decisions that wait for it (queue ``routing``)."""
    for decision_id in decision_ids:
        app.send_task(names.ANSWER_WITH_AI, args=(decision_id,))


def send_outbound(outbound_ids: list[int], *, bulk: bool = False, countdown: float | None = None) -> None:
    """One send task per outbox row: on ``outbound``, or ``outbound_bulk`` for bulk messages (the
    caller knows the row's trigger: domain.replies.BULK); after ``countdown`` seconds if given."""
    queue = names.OUTBOUND_BULK_QUEUE if bulk else names.OUTBOUND_QUEUE
    for outbound_id in outbound_ids:
        app.send_task(names.SEND_OUTBOUND, args=(outbound_id,), queue=queue, countdown=countdown)


def sync_contacts(contact_ids: list[int], delay: float = 0.0) -> None:
    """One CRM sync task per contact (queue ``crm``), after ``delay`` seconds."""
    for contact_id in contact_ids:
        app.send_task(names.SYNC_CONTACT, args=(contact_id,), countdown=delay or None)


def download_media(media_ids: list[int], *, countdown: float | None = None) -> None:
    """One download task per media file (queue ``media``), after ``countdown`` seconds if given."""
    for media_id in media_ids:
        app.send_task(names.DOWNLOAD_MEDIA, args=(media_id,), countdown=countdown)


def mirror_labels(contact_ids: list[int], *, countdown: float | None = None) -> None:
    """Set each contact's WAHA chat labels to what we hold (queue ``labels``)."""
    for contact_id in contact_ids:
        app.send_task(names.MIRROR_LABELS, args=(contact_id,), countdown=countdown)


def sync_templates() -> None:
    """Read the WABA's message templates now (``POST /api/templates/sync``, beat)."""
    app.send_task(names.SYNC_TEMPLATES)


def refit_lead_model() -> None:
    """Refit the learned lead score now (``POST /api/lead-model/refit``; beat does it daily)."""
    app.send_task(names.REFIT_LEAD_MODEL)


def poll_odoo() -> None:
    """Read back what changed in Odoo now (queue ``crm``): a webhook's wake-up."""
    app.send_task(names.POLL_ODOO)


def expand_broadcast(broadcast_id: int) -> None:
    """The task that turns a broadcast into outbox rows."""
    app.send_task(names.EXPAND_BROADCAST, args=(broadcast_id,))


def send_conversions(event_ids: list[int]) -> None:
    """One Conversions API send per event row (queue ``crm``: it waits on an outside system)."""
    for event_id in event_ids:
        app.send_task(names.SEND_CONVERSION, args=(event_id,))
