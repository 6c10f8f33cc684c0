"""Prometheus metrics.

Counters live in each process. With ``PROMETHEUS_MULTIPROC_DIR`` set (the embedded runner and
docker compose set it), prometheus_client writes them to shared files and ``/metrics`` on the API
sums every process on the machine: producers, worker children and beat alike.
"""

from __future__ import annotations

import os
import socket

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.registry import REGISTRY

if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Files are named by process id; containers sharing the directory all number their
    # processes from 1, so the host name makes each process's file its own.
    values.ValueClass = values.MultiProcessValue(lambda: f"{socket.gethostname()}-{os.getpid()}")

EVENTS_ACCEPTED = Counter(
    "wacrm_events_accepted_total", "Webhook events committed to the inbox.", ["source", "kind"]
)
EVENTS_DUPLICATE = Counter(
    "wacrm_events_duplicate_total", "Replayed webhook events acknowledged, not stored.", ["source"]
)
EVENTS_REJECTED = Counter(
    "wacrm_events_rejected_total", "Webhook requests refused, by reason.", ["source", "reason"]
)
UNKNOWN_CHANNEL_EVENTS = Counter(
    "wacrm_events_unknown_channel_total",
    "Webhook events for a number or session that is no enabled channel: acknowledged, kept, not processed.",
    ["source"],
)
EVENTS_PROCESSED = Counter(
    "wacrm_events_processed_total", "Inbox events processed by workers.", ["kind", "outcome"]
)
TASK_SECONDS = Histogram("wacrm_task_duration_seconds", "Time a worker spent on one task.", ["task"])
EVENT_LATENCY_SECONDS = Histogram(
    "wacrm_event_latency_seconds",
    "From webhook accepted to event processed.",
    ["kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
INBOX_REQUEUED = Counter("wacrm_inbox_requeued_total", "Inbox events the sweeper put back on the queue.")
OUTBOUND_SENDS = Counter(
    "wacrm_outbound_sends_total",
    "Outbound send attempts, by outcome (sent, retry, failed, ...).",
    ["outcome"],
)
OUTBOX_REQUEUED = Counter("wacrm_outbox_requeued_total", "Outbox rows the sweeper put back on the queue.")
FOLLOWUPS_FIRED = Counter("wacrm_followups_fired_total", "Delivery follow-ups beat found due and queued.")
CHATS_IGNORED = Counter(
    "wacrm_waha_chats_ignored_total",
    "WAHA events about a chat that is not a person (group, broadcast list, status, newsletter): ignored.",
    ["event", "chat_kind"],
)
LABEL_CHANGES = Counter(
    "wacrm_label_changes_total",
    "Label changes recorded; outcome 'stale' when a newer event had already decided the state, "
    "'echo' when WAHA reported back a change made through the API (not recorded again).",
    ["action", "outcome"],
)
CRM_SYNC_JOBS = Counter(
    "wacrm_crm_sync_jobs_total",
    "CRM sync jobs run, by kind and outcome (done, retry, failed).",
    ["kind", "outcome"],
)
CRM_MISSING = Counter(
    "wacrm_crm_missing_total",
    "Fields or models the connected CRM lacks, the sync going on without them (once per process).",
    ["what"],
)
CRM_REQUEUED = Counter(
    "wacrm_crm_requeued_total", "Contacts whose lost CRM sync task the sweeper published again."
)
ROUTING_DECISIONS = Counter(
    "wacrm_routing_decisions_total",
    "Inbound messages routed, by who answers (human, automation, ai, none).",
    ["responder"],
)
AI_ANSWERS = Counter(
    "wacrm_ai_answers_total",
    "AI agent outcomes: answered, or handed to a human (low confidence, handoff, unavailable).",
    ["outcome"],
)
FIRST_RESPONSE_SECONDS = Histogram(
    "wacrm_first_response_seconds",
    "From the customer's first unanswered message to the first reply in a conversation.",
    ["responder"],
    buckets=(1, 5, 15, 30, 60, 300, 900, 1800, 3600, 14400, 86400),
)
ADAPTIVE_FOLLOWUPS = Counter(
    "wacrm_adaptive_followups_total",
    "Adaptive follow-ups beat found due: queued, cancelled (with why) or held out (the baseline).",
    ["outcome"],
)


def render() -> tuple[bytes, str]:
    """The text exposition of this machine's metrics, and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
