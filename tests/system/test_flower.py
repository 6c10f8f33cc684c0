"""Flower, as operations runs it: ``celery -A workers flower`` reading flowerconfig.py, against the
private Redis and the session's real worker. It needs credentials, lists the worker with its
queues and each task with its name and arguments (ids only: no phone number, no message text),
and serves Prometheus metrics; without credentials it refuses to start unless told this is a
development machine."""

from __future__ import annotations

import importlib
import inspect
import os
import runpy
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

import celeryconfig
from models import InboxEvent
from models.db import session_scope
from testkit import samples
from testkit.processes import PROJECT_ROOT, free_port, wait_for
from workers import app

USER, PASSWORD = "ops", "flower-test-password"
AUTH = (USER, PASSWORD)
BUDI, BUDI_TEXT = "6281212345678", "Halo kak, masih ada stok ukuran 42?"
# Environment variables that would change how Flower authenticates: each test sets its own.
FLOWER_AUTH_ENV = ("FLOWER_BASIC_AUTH", "FLOWER_AUTH", "FLOWER_UNAUTHENTICATED", "FLOWER_UNAUTHENTICATED_API")
STARTUP_SECONDS = 120  # importing the project and connecting, on a busy two-core machine


class Flower:
    """``celery -A workers flower`` on a free port, run from the project root like in compose."""

    def __init__(self, *args: str, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(tempfile.gettempdir()) / f"wacrm-flower-{self.port}.log"
        self._log = self.log_path.open("wb")
        environment = {k: v for k, v in os.environ.items() if k not in FLOWER_AUTH_ENV}
        argv = ["-m", "celery", "-A", "workers", "flower", f"--port={self.port}", "--address=127.0.0.1"]
        self.process = subprocess.Popen(
            [sys.executable, *argv, *args],
            cwd=PROJECT_ROOT,
            env={**environment, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def get(self, path: str, auth: tuple[str, str] | None = AUTH, **params: str) -> requests.Response:
        return requests.get(self.url + path, auth=auth, params=params, timeout=30)

    def wait_ready(self) -> Flower:
        def answers() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"flower exited with {self.process.returncode}:\n{self.output()}")
            try:
                return self.get("/healthcheck", auth=None).status_code == 200
            except requests.ConnectionError:
                return False

        wait_for(answers, STARTUP_SECONDS, "flower answering")
        return self

    def exit_code(self) -> int:
        try:
            return self.process.wait(timeout=STARTUP_SECONDS)
        finally:
            self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait()
        self._log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


@pytest.fixture(scope="module")
def flower(worker):
    process = Flower(FLOWER_BASIC_AUTH=f"{USER}:{PASSWORD}")
    try:
        yield process.wait_ready()
    finally:
        process.stop()


def test_every_task_takes_ids_never_phone_numbers_or_text():
    """What Flower shows as arguments is what the tasks take: check every task of ours."""
    app.loader.import_default_modules()  # every module of celeryconfig.imports, as a worker does
    ours = {name: task for name, task in app.tasks.items() if name.startswith(("workers.", "schedules."))}
    assert "workers.ingest.process_inbox_event" in ours
    for name, task in ours.items():
        for parameter in inspect.signature(task.run).parameters.values():
            assert parameter.name.endswith("_id") and parameter.annotation in (int, "int"), (
                f"{name}({parameter}): a task argument must be a database id, so that Flower and the "
                "broker never hold a phone number or message text"
            )


def test_workers_send_the_task_events_flower_lists():
    assert app.conf.broker_url.startswith("redis://")
    assert app.conf.worker_send_task_events is True
    assert app.conf.task_send_sent_event is True


def test_flower_needs_credentials(flower):
    for path in ("/", "/tasks", "/api/workers", "/api/tasks"):
        assert flower.get(path, auth=None).status_code == 401, path
        assert flower.get(path, auth=(USER, "guess")).status_code == 401, path
    assert flower.get("/api/workers").status_code == 200
    # The container health check needs no password.
    assert flower.get("/healthcheck", auth=None).text == "OK"


def test_flower_lists_the_running_workers_and_their_queues(flower, worker):
    argv = list(worker.process.args)
    consumes = set(argv[argv.index("-Q") + 1].split(",")) if "-Q" in argv else set(celeryconfig.QUEUES)

    def listed() -> tuple[dict, set[str]] | None:
        workers = flower.get("/api/workers", refresh="1").json()
        mine = next((info for name, info in workers.items() if name.startswith(f"{worker.name}@")), None)
        every = {q["name"] for info in workers.values() for q in info.get("active_queues") or []}
        # The session's workers (this one and the routing worker) consume every queue between them.
        return (mine, every) if mine and set(celeryconfig.QUEUES) <= every else None

    mine, _ = wait_for(listed, 60, f"flower listing {worker.name} and every queue")
    assert {queue["name"] for queue in mine["active_queues"]} == consumes


def test_flower_lists_a_task_with_its_name_and_arguments(flower, worker, client, drained):
    body, headers = samples.encode(samples.inbound_text(BUDI, "Budi", BUDI_TEXT))
    assert client.post("/webhooks/whatsapp", content=body, headers=headers).status_code == 200
    drained()
    with session_scope() as session:
        event_id = session.scalars(select(InboxEvent.id)).one()

    def listed() -> dict | None:
        tasks = flower.get("/api/tasks", taskname="workers.ingest.process_inbox_event").json()
        return next(
            (t for t in tasks.values() if t.get("args") == f"({event_id},)" and t.get("state") == "SUCCESS"),
            None,
        )

    task = wait_for(listed, 60, f"flower listing process_inbox_event({event_id})")
    assert task["name"] == "workers.ingest.process_inbox_event"
    assert task["worker"].startswith(f"{worker.name}@")
    # Nothing Flower holds about any task carries the customer's number or words.
    everything = flower.get("/api/tasks").text
    for secret in (BUDI, BUDI[2:], BUDI_TEXT, "masih ada stok"):
        assert secret not in everything


def test_flower_serves_prometheus_metrics(flower, worker):
    def online() -> str | None:
        answer = flower.get("/metrics")
        assert answer.status_code == 200
        return answer.text if f'flower_worker_online{{worker="{worker.name}@' in answer.text else None

    metrics = wait_for(online, 60, "flower_worker_online for the worker")
    assert "# TYPE flower_events_total counter" in metrics
    assert BUDI not in metrics


def test_flower_refuses_to_start_without_authentication():
    refused = Flower()
    assert refused.exit_code() != 0
    assert "refusing to start without authentication" in refused.output()
    assert "FLOWER_BASIC_AUTH=user:password" in refused.output()


def test_flower_refuses_a_basic_auth_that_is_not_user_and_password():
    refused = Flower(FLOWER_BASIC_AUTH="just-a-password")
    assert refused.exit_code() != 0
    assert "basic auth entry 1 is not 'user:password'" in refused.output()
    assert "just-a-password" not in refused.output()


def test_flower_runs_open_only_when_told_it_is_a_development_machine(worker):
    process = Flower(FLOWER_UNAUTHENTICATED="1")
    try:
        process.wait_ready()
        assert process.get("/workers", auth=None).status_code == 200
        # Flower's own rule still holds: its API stays closed without FLOWER_UNAUTHENTICATED_API.
        assert process.get("/api/workers", auth=None).status_code == 401
    finally:
        process.stop()


def test_command_line_basic_auth_is_used(worker):
    process = Flower(f"--basic_auth={USER}:cli-password")
    try:
        process.wait_ready()
        assert process.get("/api/workers", auth=(USER, "cli-password")).status_code == 200
        assert process.get("/api/workers", auth=None).status_code == 401
    finally:
        process.stop()


@pytest.fixture
def flower_options():
    """Flower's global options as its command line leaves them before reading flowerconfig.py."""
    from tornado.options import options

    importlib.import_module("flower.options")  # defines Flower's options

    saved = (options.basic_auth or [], options.auth)
    options.basic_auth, options.auth = [], ""  # a multiple option takes lists only, not None
    yield options
    options.basic_auth, options.auth = saved


def run_flowerconfig() -> dict:
    return runpy.run_path(str(PROJECT_ROOT / "flowerconfig.py"))


def test_flowerconfig_takes_basic_auth_from_the_setting(flower_options, monkeypatch):
    import settings

    monkeypatch.delenv("FLOWER_UNAUTHENTICATED", raising=False)
    monkeypatch.setattr(settings.settings, "flower_basic_auth", " ops:one , viewer:two ")
    assert run_flowerconfig()["basic_auth"] == ["ops:one", "viewer:two"]

    # Flower's own parse of --basic_auth or FLOWER_BASIC_AUTH comes first.
    flower_options.basic_auth = ["cli:three"]
    assert run_flowerconfig()["basic_auth"] == ["cli:three"]

    flower_options.basic_auth = []
    monkeypatch.setattr(settings.settings, "flower_basic_auth", None)
    with pytest.raises(SystemExit, match="refusing to start without authentication"):
        run_flowerconfig()
    monkeypatch.setattr(settings.settings, "flower_basic_auth", "ops:")
    with pytest.raises(SystemExit, match="is not 'user:password'"):
        run_flowerconfig()

    monkeypatch.setattr(settings.settings, "flower_basic_auth", None)
    monkeypatch.setenv("FLOWER_UNAUTHENTICATED", "1")
    assert "basic_auth" not in run_flowerconfig()
    monkeypatch.setenv("FLOWER_UNAUTHENTICATED", "0")
    with pytest.raises(SystemExit):
        run_flowerconfig()


def test_flowerconfig_sets_only_flower_options(flower_options, monkeypatch):
    """Flower takes every public top-level name that matches one of its options: no surprises."""
    import settings

    monkeypatch.setattr(settings.settings, "flower_basic_auth", "ops:one")
    public = {name for name in run_flowerconfig() if not name.startswith("_") and name != "os"}
    assert public == {"basic_auth", "tasks_columns", "max_tasks", "purge_offline_workers"}
    known = {name.replace("-", "_") for name in flower_options._options}
    assert public <= known


def test_compose_requires_flower_basic_auth():
    import yaml

    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
    flower_service = compose["services"]["flower"]
    assert flower_service["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")
    assert flower_service["environment"]["CELERY_BROKER_URL"] == "redis://redis:6379/0"
