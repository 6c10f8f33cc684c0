"""Celery settings, loaded with ``app.config_from_object("celeryconfig")``.

Delivery is at-least-once: a task is acknowledged only after it returns (``task_acks_late``), a
task whose worker process died is put back (``task_reject_on_worker_lost``), and on Redis an
unacknowledged message comes back after ``visibility_timeout``, which is longer than any task
may run. Effects are exactly-once because every task is idempotent (see workers/ingest.py).
"""

from kombu import Exchange, Queue

from queueing.names import QUEUE_OF, QUEUES
from schedules.beat import BEAT_SCHEDULE
from settings import VAR_DIR, settings

broker_url = settings.celery_broker_url
broker_connection_retry_on_startup = True
broker_connection_timeout = 3

_TASK_TIME_LIMIT = 300
task_time_limit = _TASK_TIME_LIMIT
task_soft_time_limit = _TASK_TIME_LIMIT - 30

if broker_url.startswith("filesystem"):
    # The embedded broker: message files in a folder, shared by every local process; each written
    # whole before a consumer can take it (queueing/filesystem_broker.py).
    broker_transport = "queueing.filesystem_broker:Transport"
    _folder = settings.broker_folder
    broker_transport_options = {
        "data_folder_in": str(_folder / "queue"),
        "data_folder_out": str(_folder / "queue"),
        "control_folder": str(_folder / "control"),
    }
else:
    broker_transport_options = {
        "visibility_timeout": 6 * _TASK_TIME_LIMIT,
        "socket_connect_timeout": 3,
        "socket_timeout": 10,
    }

# One queue per group of work (queueing/names.py), each its own direct exchange: a message
# routed to one queue never lands in another.
task_queues = [Queue(name, Exchange(name), routing_key=name) for name in QUEUES]
task_default_queue = "ingest"
task_routes = {name: {"queue": queue} for name, queue in QUEUE_OF.items()}

task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 4
worker_cancel_long_running_tasks_on_connection_loss = True

# Task events, so that Flower (flowerconfig.py) lists every task with its name and arguments from
# the moment it is sent: workers report received/started/succeeded/failed/retried, and the process
# that publishes a task (API, sweepers) reports it sent. On Redis, events go to subscribers only
# (PUBLISH): with no Flower running each costs one publish and is never queued. The embedded
# file broker would write each event as a file into every listener's queue, so it does without
# (Flower still turns worker events on while it runs). Every task takes ids, never a phone number
# or message text (tests/system/test_flower.py checks the signatures).
worker_send_task_events = not broker_url.startswith("filesystem")
task_send_sent_event = worker_send_task_events

task_serializer = "json"
accept_content = ["json"]
task_ignore_result = True
result_backend = None

# A publish that cannot reach the broker gives up quickly: the event is already in the inbox
# and the sweeper will enqueue it, so the producer must not hang on a dead broker.
task_publish_retry_policy = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}

imports = (
    "workers.ingest",
    "workers.routing",
    "workers.ai_agent",
    "workers.outbound",
    "workers.broadcasts",
    "workers.crm",
    "workers.media",
    "workers.templates",
    "workers.conversions",
    "workers.labels",
    "schedules.sweepers",
    "schedules.followups",
    "schedules.adaptive_followups",
    "schedules.crm",
    "schedules.outcomes",
    "schedules.lead_model",
)

beat_schedule = BEAT_SCHEDULE
beat_schedule_filename = str(VAR_DIR / "celerybeat-schedule")

timezone = settings.timezone
enable_utc = True
