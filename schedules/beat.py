"""The beat schedule (read by celeryconfig). Task names only: beat imports no task code."""

from settings import settings

BEAT_SCHEDULE = {
    "sweep-inbox": {
        "task": "schedules.sweepers.sweep_inbox",
        "schedule": settings.inbox_sweep_interval_seconds,
    },
    "sweep-outbox": {
        "task": "schedules.sweepers.sweep_outbox",
        "schedule": settings.inbox_sweep_interval_seconds,
    },
    "sweep-broadcasts": {
        "task": "schedules.sweepers.sweep_broadcasts",
        "schedule": settings.inbox_sweep_interval_seconds,
    },
    "sweep-routing": {
        "task": "schedules.sweepers.sweep_routing",
        "schedule": settings.inbox_sweep_interval_seconds,
    },
    "fire-due-adaptive-followups": {
        "task": "schedules.adaptive_followups.fire_due_adaptive_followups",
        "schedule": settings.adaptive_followup_tick_seconds,
    },
    "fire-due-followups": {
        "task": "schedules.followups.fire_due_followups",
        "schedule": settings.followup_tick_seconds,
    },
}

if settings.odoo_url:
    # CRM sync jobs whose task was lost, or whose worker died mid-sync (schedules/crm.py).
    BEAT_SCHEDULE["sweep-crm-sync"] = {
        "task": "schedules.crm.sweep_sync_jobs",
        "schedule": settings.inbox_sweep_interval_seconds,
    }
