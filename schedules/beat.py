"""The beat schedule (read by celeryconfig). Task names only: beat imports no task code."""

from queueing import names
from settings import settings

BEAT_SCHEDULE = {
    "sweep-inbox": {
        "task": names.SWEEP_INBOX,
        "schedule": settings.inbox_sweep_interval_seconds,
    },
    "sweep-outbox": {
        "task": names.SWEEP_OUTBOX,
        "schedule": settings.inbox_sweep_interval_seconds,
    },
    "sweep-broadcasts": {
        "task": names.SWEEP_BROADCASTS,
        "schedule": settings.inbox_sweep_interval_seconds,
    },
    "sweep-routing": {
        "task": names.SWEEP_ROUTING,
        "schedule": settings.inbox_sweep_interval_seconds,
    },
    "sweep-media": {
        "task": names.SWEEP_MEDIA,
        "schedule": settings.inbox_sweep_interval_seconds,
    },
    "fire-due-adaptive-followups": {
        "task": names.FIRE_DUE_ADAPTIVE_FOLLOWUPS,
        "schedule": settings.adaptive_followup_tick_seconds,
    },
    "fire-due-followups": {
        "task": names.FIRE_DUE_FOLLOWUPS,
        "schedule": settings.followup_tick_seconds,
    },
    "sweep-silent-conversations": {
        "task": names.SWEEP_SILENT_CONVERSATIONS,
        "schedule": settings.outcome_sweep_interval_seconds,
    },
    "sweep-conversions": {
        "task": names.SWEEP_CONVERSIONS,
        "schedule": settings.inbox_sweep_interval_seconds,
    },
}

# Each WABA's template list, so that statuses missed by a webhook are caught up (a no-op without a
# WABA id: workers/templates.py).
BEAT_SCHEDULE["sync-templates"] = {
    "task": names.SYNC_TEMPLATES,
    "schedule": settings.template_sync_interval_seconds,
}

if settings.lead_model_refit_seconds:
    # The learned lead score, refitted from the latest outcomes (schedules/lead_model.py).
    BEAT_SCHEDULE["refit-lead-model"] = {
        "task": names.REFIT_LEAD_MODEL,
        "schedule": settings.lead_model_refit_seconds,
    }

if settings.odoo_url:
    # CRM sync jobs whose task was lost, or whose worker died mid-sync (schedules/crm.py).
    BEAT_SCHEDULE["sweep-crm-sync"] = {
        "task": names.SWEEP_CRM_SYNC,
        "schedule": settings.inbox_sweep_interval_seconds,
    }
    # Conversations waiting for a person past their respond-by time: an Odoo activity each.
    BEAT_SCHEDULE["track-response-activities"] = {
        "task": names.TRACK_RESPONSE_ACTIVITIES,
        "schedule": settings.inbox_sweep_interval_seconds,
    }
    # Changes made in Odoo (a salesperson, a stage) read back by write_date (workers/crm.py).
    BEAT_SCHEDULE["poll-odoo"] = {
        "task": names.POLL_ODOO,
        "schedule": settings.odoo_poll_seconds,
    }
