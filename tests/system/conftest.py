"""Test set-up: real PostgreSQL, a private Redis, a real Celery worker.

The environment is fixed here, before any project module is imported, because settings are
read once from it. Each test run gets its own PostgreSQL database (dropped at the end) and its
own redis-server on a free port, so runs never see each other or the shared services.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

ADMIN_URL = make_url(
    os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
)
DATABASE = f"wacrm_test_{uuid.uuid4().hex[:10]}"

from testkit.fakes.cloud_api import FakeCloudApi  # noqa: E402
from testkit.fakes.llm import FakeLlm  # noqa: E402
from testkit.fakes.odoo import FakeOdoo  # noqa: E402
from testkit.processes import CeleryProcess, RedisServer, wait_for  # noqa: E402

REDIS = RedisServer()
# The outside world: every worker of the run sends through the real Cloud API client to this.
CLOUD = FakeCloudApi()
WABA_ID = "102290129340398"  # the business account whose templates the fake lists
CONVERSIONS_DATASET_ID = "880011223344"  # the dataset the Conversions API events go to
# Every worker of the run syncs contacts to this fake Odoo (JSON-RPC over real HTTP).
ODOO = FakeOdoo()
# The AI agent's endpoint, for the routing worker started with the AI agent on (``routing``).
LLM = FakeLlm()
os.environ.update(
    DATABASE_URL=ADMIN_URL.set(database=DATABASE).render_as_string(hide_password=False),
    CELERY_BROKER_URL=REDIS.url,
    INBOX_SWEEP_AFTER_SECONDS="2",
    INBOX_SWEEP_INTERVAL_SECONDS="1",
    WHATSAPP_GATEWAY="cloud",
    WHATSAPP_API_BASE=CLOUD.base_url,
    WHATSAPP_ACCESS_TOKEN=CLOUD.access_token,
    WHATSAPP_PHONE_NUMBER_ID=CLOUD.phone_number_id,
    WHATSAPP_WABA_ID=WABA_ID,
    OUTBOUND_TIMEOUT_SECONDS="2",
    OUTBOUND_RETRY_BASE_SECONDS="0.2",
    OUTBOUND_RETRY_MAX_SECONDS="1",
    OUTBOX_SWEEP_AFTER_SECONDS="5",
    # Every minute: a follow-up for a date of today is due at once, one for a later date is not.
    FOLLOWUP_CRON="* * * * *",
    FOLLOWUP_TICK_SECONDS="1",
    # No adaptive follow-up held back as a baseline, unless a test's beat says so.
    FOLLOWUP_HOLDOUT_SHARE="0",
    LOG_LEVEL="INFO",
    ODOO_URL=ODOO.url,
    ODOO_DB=ODOO.db,
    ODOO_LOGIN=ODOO.login,
    ODOO_API_KEY=ODOO.api_key,
    ODOO_TIMEOUT_SECONDS="2",
    CRM_RETRY_MAX_SECONDS="1",
    # Odoo as the order system too (tests/system/test_odoo_orders.py); its webhook's path secret.
    ODOO_ORDER_SYSTEM="true",
    ODOO_WEBHOOK_SECRET="odoo-hook-secret",
    # Routing: open all hours, no survey and no AI agent, unless a test's routing worker says so.
    BUSINESS_HOURS="always",
    SURVEY_ENABLED="false",
    AI_TIMEOUT_SECONDS="2",
    # The webhook secrets are unset below and most tests post unsigned: a development machine.
    # Tests of the closed default build their client with development_mode=False.
    DEVELOPMENT_MODE="true",
    # Media files of the run: a directory of its own, never the project's var/.
    MEDIA_STORE=tempfile.mkdtemp(prefix="wacrm-media-"),
    # Channel secrets at rest (tests/system/test_channels.py); the API and every worker share it.
    SECRET_KEY="test-secret-key-for-channels",
    # Absolute tracker links in the order messages, on the test client's own host.
    PUBLIC_URL="http://testserver",
    # Meta's Conversions API, answered by the fake Cloud API (tests/system/test_campaigns.py).
    META_CONVERSIONS_ENABLED="true",
    META_CONVERSIONS_DATASET_ID=CONVERSIONS_DATASET_ID,
    META_CONVERSIONS_RETRY_BASE_SECONDS="0.2",
)
for name in (
    "WHATSAPP_APP_SECRET",
    "WHATSAPP_VERIFY_TOKEN",
    "WAHA_HMAC_KEY",
    "ADMIN_TOKEN",
    "PROMETHEUS_MULTIPROC_DIR",
    "ORDER_WEBHOOK_SECRET",
    "ORDER_MESSAGES_FILE",
    "OUTBOUND_RATE_REDIS_URL",
    "AI_BASE_URL",
    "AI_API_KEY",
    "AI_MODEL",
    "AUTOMATION_FILE",
):
    os.environ.pop(name, None)

from fastapi.testclient import TestClient  # noqa: E402

from models import Base  # noqa: E402
from models.channels import note_change  # noqa: E402
from models.db import get_engine, session_scope  # noqa: E402
from models.inbox import InboxEvent  # noqa: E402
from models.migrate import upgrade_to_head  # noqa: E402
from producers.app import create_app  # noqa: E402
from settings import Settings  # noqa: E402

ADMIN_TOKEN = "test-admin-token-Xk29Qm7LpZ4w"


def _services_or_exit() -> None:
    """One clear line, instead of every test failing at set-up, when a service is missing."""
    where = ADMIN_URL.render_as_string(hide_password=True)
    try:
        with create_engine(ADMIN_URL).connect():
            pass
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        pytest.exit(
            f"PostgreSQL does not answer at {where} ({reason}): start it or set TEST_POSTGRES_URL; "
            "`./run test tests/unit` needs no services",
            returncode=3,
        )
    if shutil.which("redis-server") is None:
        pytest.exit(
            "redis-server is not installed (the system tests start their own): "
            "apt-get install redis-server; `./run test tests/unit` needs no services",
            returncode=3,
        )


@pytest.fixture(scope="session", autouse=True)
def database():
    _services_or_exit()
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{DATABASE}"'))
    upgrade_to_head()
    yield
    get_engine().dispose()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session", autouse=True)
def redis_server():
    REDIS.start()
    yield REDIS
    REDIS.stop()


# The session's long-lived workers, for the tests that must stop them for a while (test_faults).
SHARED: list[CeleryProcess] = []


class RoutingWorker:
    """The worker of the ``routing`` queue, restarted when a test wants other routing settings
    (the AI agent on, business hours, the survey): settings are read when a process starts."""

    def __init__(self) -> None:
        self.process: CeleryProcess | None = None
        self.env: dict[str, str] | None = None

    def use(self, **env: str) -> None:
        if self.process is not None and env == self.env:
            return
        self.stop()
        self.process = CeleryProcess.worker(concurrency=2, queues="routing", **env).wait_ready()
        SHARED.append(self.process)
        self.env = env

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            SHARED.remove(self.process)
            self.process = None


ROUTING = RoutingWorker()
AI_ENV = {"AI_BASE_URL": LLM.base_url, "AI_API_KEY": LLM.api_key or "", "AI_MODEL": LLM.model}


@pytest.fixture(scope="session")
def worker(database, redis_server):
    """One worker (two pool processes) on every queue but ``routing``, and a routing worker
    with the default test settings; shared by the tests that need them."""
    queues = "ingest,outbound,outbound_bulk,crm,media,labels,schedules"
    process = CeleryProcess.worker(concurrency=2, queues=queues).wait_ready()
    SHARED.append(process)
    yield process
    ROUTING.stop()
    SHARED.remove(process)
    process.stop()


@pytest.fixture
def routing(worker):
    """The routing worker, with the default test settings (``routing.use(...)`` to change them)."""
    ROUTING.use()
    return ROUTING


@pytest.fixture(autouse=True)
def _default_routing(request):
    # Tests that use the shared worker get routing too, with default settings.
    if "worker" in request.fixturenames and "routing" not in request.fixturenames:
        ROUTING.use()
    yield


@pytest.fixture
def llm() -> FakeLlm:
    """The fake LLM, answering with its default reply; nothing recorded."""
    LLM.reset()
    return LLM


@pytest.fixture(autouse=True)
def clean_tables(database):
    """Every test starts with empty tables. A worker may still be finishing an earlier test's
    task; TRUNCATE then waits for (or deadlocks with) it, so try again until it goes through."""
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)

    def truncated() -> bool:
        try:
            with session_scope() as session:
                session.execute(text("SET LOCAL lock_timeout = '2s'"))
                session.execute(text(f"TRUNCATE {tables} CASCADE"))
        except OperationalError:
            return False
        return True

    wait_for(truncated, 60, "tables truncated")
    note_change()  # the webhooks' view of the stored channels (producers/channels.py) is stale
    yield


@pytest.fixture
def cloud_api() -> FakeCloudApi:
    """The fake Cloud API, with nothing recorded and nothing scripted."""
    CLOUD.reset()
    return CLOUD


@pytest.fixture
def odoo() -> FakeOdoo:
    """The fake Odoo (Odoo 17, every model and field), with no records, no calls counted, up
    and accepting everything."""
    odoo_shaped(17)
    ODOO.reset()
    _fresh_adapter()
    return ODOO


def _fresh_adapter() -> None:
    """A new Odoo client for the tasks a test runs in its own process (``poll_odoo()``): the
    fake forgets its records between tests, as no real Odoo does, so nothing read is kept."""
    if "workers.crm" in sys.modules:
        sys.modules["workers.crm"].adapter.cache_clear()


def odoo_shaped(version: int, *, without: tuple[str, ...] = (), restart: bool = False) -> FakeOdoo:
    """The fake Odoo as that version, lacking the fields (``"crm.lead.medium_id"``) or models
    (``"utm.campaign"``) named. The running CRM workers are restarted when it changes, since a
    worker reads Odoo's version and fields once (then every ten minutes). ``restart``: restart
    them even when the shape is unchanged, so they connect (and record the connection) anew."""
    shape = (version, without)
    if getattr(ODOO, "shape", (17, ())) == shape and not restart:
        return ODOO
    ODOO.set_version(version)
    for what in without:
        model, _, field = what.rpartition(".") if what.count(".") > 1 else (what, "", "")
        if field:
            ODOO.drop_field(model, field)
        else:
            ODOO.drop_model(model)
    ODOO.shape = shape
    running = [p for p in SHARED if p.process.poll() is None and "crm" in " ".join(p._args)]
    for process in running:
        process.stop()
    for process in running:
        process.restart().wait_ready()
    return ODOO


@pytest.fixture(params=[17, 18, 19], ids=["odoo17", "odoo18", "odoo19"])
def odoo_version(request, worker) -> FakeOdoo:
    """The fake Odoo as Odoo 17, 18 and 19 in turn (JSON-RPC, JSON-RPC, JSON-2): a test using
    this runs once against each. The workers connect anew: the connection they recorded went
    with the previous test's tables."""
    odoo_shaped(request.param, restart=True)
    ODOO.reset()
    _fresh_adapter()
    return ODOO


@pytest.fixture
def make_client():
    """A TestClient for the real app with chosen settings (secrets, limits, token)."""

    def build(**overrides) -> TestClient:
        overrides.setdefault("admin_token", ADMIN_TOKEN)
        return TestClient(create_app(Settings(**overrides)))

    return build


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def pending_events() -> int:
    with session_scope() as session:
        return session.query(InboxEvent).filter(InboxEvent.state == "pending").count()


@pytest.fixture
def drained():
    """Call to wait until the workers have processed every inbox event."""

    def wait(timeout: float = 60) -> None:
        wait_for(lambda: pending_events() == 0, timeout, "every inbox event processed")

    return wait
