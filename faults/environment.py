"""The scratch database and the settings every process of the run reads.

Settings are read once, at the first import of ``settings``; ``configure`` therefore runs
before any project module that imports it, and every child process inherits the environment it
leaves. Nothing here imports ``settings``.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

# The PostgreSQL server, as a role that may create databases and terminate backends.
ADMIN_URL = os.environ.get("FAULTS_POSTGRES_URL") or os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)

APP_SECRET = "faults-app-secret"  # X-Hub-Signature-256 of the Cloud API webhooks
WAHA_HMAC_KEY = "faults-waha-key"  # X-Webhook-Hmac of the WAHA webhooks
ORDER_SECRET = "faults-order-secret"  # X-Signature-256 of the order-system webhooks
ADMIN_TOKEN = "faults-admin-token-R7vK2mQx9"

# Every process of the system names its PostgreSQL sessions with this prefix (libpq's
# PGAPPNAME), so the chaos thread terminates theirs and never the monitor's own.
APP_PREFIX = "wacrm-"
MONITOR_APP = "faults-monitor"

# Timings of the run: short sweeps, so a lost task is found in seconds rather than minutes.
TIMINGS = {
    "INBOX_SWEEP_INTERVAL_SECONDS": "3",
    # Longer than the queue's wait (the sender's backpressure keeps it to half of this): the
    # sweeper cannot tell a lost task from one still queued, and re-publishes both.
    "INBOX_SWEEP_AFTER_SECONDS": "30",
    "OUTBOX_SWEEP_AFTER_SECONDS": "15",
    "FOLLOWUP_TICK_SECONDS": "1",
    # Every minute: a follow-up for a delivery date of today is due at once.
    "FOLLOWUP_CRON": "* * * * *",
    "OUTBOUND_TIMEOUT_SECONDS": "2",
    "OUTBOUND_RETRY_BASE_SECONDS": "0.5",
    "OUTBOUND_RETRY_MAX_SECONDS": "4",
    "OUTBOUND_RATE_PER_SECOND": "200",
}

# Settings that would point the run somewhere else, or change what it measures.
_UNSET = (
    "OUTBOUND_RATE_REDIS_URL",
    "ORDER_MESSAGES_FILE",
    "PROMETHEUS_MULTIPROC_DIR",
    "WAHA_URL",
    "WAHA_API_KEY",
    "WAHA_SESSION",
    "ODOO_URL",
    "ODOO_DB",
    "ODOO_LOGIN",
    "ODOO_API_KEY",
    "AI_BASE_URL",
    "AI_API_KEY",
    "WHATSAPP_VERIFY_TOKEN",
    "BROKER_FOLDER",
    "OUTBOUND_MAX_ATTEMPTS",
    "INBOX_MAX_ATTEMPTS",
    "CONVERSATION_IDLE_HOURS",
)


def configure(database_url: str, broker_url: str, cloud_env: dict[str, str], **overrides: str) -> None:
    """Point ``settings`` (in this process and every child) at the run's own services."""
    if "settings" in sys.modules:
        raise RuntimeError("settings were imported before the fault-injection environment was set")
    for name in _UNSET:
        os.environ.pop(name, None)
    os.environ.update(
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=broker_url,
        WHATSAPP_APP_SECRET=APP_SECRET,
        WAHA_HMAC_KEY=WAHA_HMAC_KEY,
        ORDER_WEBHOOK_SECRET=ORDER_SECRET,
        ADMIN_TOKEN=ADMIN_TOKEN,
        TIMEZONE="Asia/Jakarta",
        LOG_LEVEL="INFO",
        PGAPPNAME=MONITOR_APP,
        **{**TIMINGS, **overrides},
        **cloud_env,
    )


def admin_engine():  # type: ignore[no-untyped-def]
    """An engine on the server's maintenance database, one connection per use (no pool)."""
    return create_engine(make_url(ADMIN_URL), isolation_level="AUTOCOMMIT", poolclass=NullPool)


@contextmanager
def scratch_database() -> Iterator[tuple[str, str]]:
    """A fresh database; yields (its name, its URL); dropped (forcing sessions off) at the end."""
    admin_url = make_url(ADMIN_URL)
    name = f"wacrm_faults_{uuid.uuid4().hex[:10]}"
    admin = admin_engine()
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield name, admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        db = sys.modules.get("models.db")
        if db is not None and db.get_engine.cache_info().currsize:
            db.get_engine().dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def terminate_backends(database: str) -> int:
    """``pg_terminate_backend`` on every session the system's processes hold in ``database``
    (the API, workers and beat; never this monitor's). Returns how many were terminated."""
    engine = admin_engine()
    try:
        with engine.connect() as connection:
            return len(
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :db AND application_name LIKE :prefix AND pid <> pg_backend_pid()"
                    ),
                    {"db": database, "prefix": f"{APP_PREFIX}%"},
                ).all()
            )
    finally:
        engine.dispose()
