"""Every task name, and the queue each is routed to: the one place a name is spelt.

Producers, the API and beat publish by these names (``app.send_task``), so they never import the
task modules; ``celeryconfig.task_routes`` is built from ``QUEUE_OF``. A task module registers
its task under the same constant. Renaming a task is a deploy hazard (messages already queued
under the old name would be unknown to new workers), so the strings keep the modules' paths.
"""

from __future__ import annotations

# Event work, one queue per group so each can get its own workers (celery worker -Q ...).
PROCESS_INBOX_EVENT = "workers.ingest.process_inbox_event"
ROUTE_MESSAGE = "workers.routing.route_message"
ANSWER_WITH_AI = "workers.ai_agent.answer_with_ai"
SEND_OUTBOUND = "workers.outbound.send_outbound"
SYNC_CONTACT = "workers.crm.sync_contact"
POLL_ODOO = "workers.crm.poll_odoo"
EXPAND_BROADCAST = "workers.broadcasts.expand_broadcast"
DOWNLOAD_MEDIA = "workers.media.download_media"
SYNC_TEMPLATES = "workers.templates.sync_templates"
SEND_CONVERSION = "workers.conversions.send_conversion"
MIRROR_LABELS = "workers.labels.mirror_labels"

# Beat's periodic tasks (schedules/).
SWEEP_INBOX = "schedules.sweepers.sweep_inbox"
SWEEP_OUTBOX = "schedules.sweepers.sweep_outbox"
SWEEP_BROADCASTS = "schedules.sweepers.sweep_broadcasts"
SWEEP_ROUTING = "schedules.sweepers.sweep_routing"
SWEEP_CRM_SYNC = "schedules.crm.sweep_sync_jobs"
SWEEP_MEDIA = "schedules.sweepers.sweep_media"
TRACK_RESPONSE_ACTIVITIES = "schedules.crm.track_response_activities"
FIRE_DUE_FOLLOWUPS = "schedules.followups.fire_due_followups"
FIRE_DUE_ADAPTIVE_FOLLOWUPS = "schedules.adaptive_followups.fire_due_adaptive_followups"
SWEEP_SILENT_CONVERSATIONS = "schedules.outcomes.sweep_silent_conversations"
SWEEP_CONVERSIONS = "schedules.outcomes.sweep_conversions"
REFIT_LEAD_MODEL = "schedules.lead_model.refit_lead_model"

# Sends: transactional messages (replies, order messages, follow-ups) on ``outbound``, bulk ones
# (broadcasts) on ``outbound_bulk``, chosen per message when publishing (queueing/publish.py).
# A worker consuming both takes from them in turn (kombu's round robin), so a reply waits behind
# the few bulk sends already fetched, never behind a broadcast's whole backlog; both queues
# share one rate ceiling (integrations/whatsapp/rate_limit.py).
OUTBOUND_QUEUE, OUTBOUND_BULK_QUEUE = "outbound", "outbound_bulk"

QUEUES = ("ingest", "routing", OUTBOUND_QUEUE, OUTBOUND_BULK_QUEUE, "crm", "media", "labels", "schedules")

QUEUE_OF = {
    PROCESS_INBOX_EVENT: "ingest",
    # Routing and the AI agent: the AI's HTTP wait never holds up ingest.
    ROUTE_MESSAGE: "routing",
    ANSWER_WITH_AI: "routing",
    SEND_OUTBOUND: OUTBOUND_QUEUE,  # or OUTBOUND_BULK_QUEUE, per message
    SYNC_CONTACT: "crm",
    # Fetching media files: long downloads on their own queue, never in front of ingest.
    DOWNLOAD_MEDIA: "media",
    # Reading the WABA's template list: a few Graph calls, now and then.
    SYNC_TEMPLATES: "schedules",
    POLL_ODOO: "crm",  # waits on Odoo, as the sync does
    SEND_CONVERSION: "crm",  # waits on Meta's Graph API, as the CRM sync waits on Odoo
    # Setting a chat's labels in WAHA (an inbox edit mirrored): waits on WAHA, never on ingest.
    MIRROR_LABELS: "labels",
    # Expanding a broadcast writes outbox rows, like the follow-up ticks: bulk database work,
    # kept off the outbound queue whose concurrency is tuned for waiting on the gateway.
    EXPAND_BROADCAST: "schedules",
    SWEEP_INBOX: "schedules",
    SWEEP_OUTBOX: "schedules",
    SWEEP_BROADCASTS: "schedules",
    SWEEP_ROUTING: "schedules",
    SWEEP_CRM_SYNC: "schedules",
    SWEEP_MEDIA: "schedules",
    TRACK_RESPONSE_ACTIVITIES: "schedules",
    FIRE_DUE_FOLLOWUPS: "schedules",
    FIRE_DUE_ADAPTIVE_FOLLOWUPS: "schedules",
    SWEEP_SILENT_CONVERSATIONS: "schedules",
    SWEEP_CONVERSIONS: "schedules",
    # Refitting the learned lead score: seconds of CPU once a day, off the event queues.
    REFIT_LEAD_MODEL: "schedules",
}
