"""docker-compose.yml agrees with the code: the commands it runs exist, every queue is consumed.

No Docker engine is needed: the file is parsed and checked against the project's modules.
"""

from __future__ import annotations

import importlib
import shlex
from pathlib import Path

import pytest
import yaml
from celery import Celery
from fastapi import FastAPI

import celeryconfig
from testkit.processes import PROJECT_ROOT

COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
METRICS_DIR = "/var/run/wacrm-metrics"
SCALABLE_WORKER = "worker"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


def command(service: dict) -> list[str]:
    value = service.get("command") or []
    return shlex.split(value) if isinstance(value, str) else [str(part) for part in value]


def option(argv: list[str], *names: str) -> str | None:
    """The value of the first of ``names`` in argv (``-Q x`` or ``--queues=x``), or None."""
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                return argv[i + 1]
            if name.startswith("--") and arg.startswith(f"{name}="):
                return arg.split("=", 1)[1]
    return None


# Global celery options that take a value (``celery -A workers worker ...``).
CELERY_VALUE_OPTIONS = {"-A", "--app", "-b", "--broker", "--result-backend", "--config", "--workdir"}


def celery_subcommand(argv: list[str]) -> str | None:
    """``worker`` in ``celery -A workers worker -Q ...``: the first argument after global options."""
    args = iter(argv[1:])
    for arg in args:
        if arg in CELERY_VALUE_OPTIONS:
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


def celery_services(services: dict[str, dict], subcommand: str | None = None) -> dict[str, list[str]]:
    found = {}
    for name, service in services.items():
        argv = command(service)
        if argv[:1] == ["celery"] and subcommand in (None, celery_subcommand(argv)):
            found[name] = argv
    return found


def host_ports(service: dict) -> list[str]:
    """Host-side ports of the service's published ports (empty for container-only ports)."""
    published = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            if port.get("published"):
                published.append(str(port["published"]))
        elif ":" in str(port):
            published.append(str(port).rsplit(":", 1)[0])
    return published


def test_compose_spec_has_no_version_key(compose):
    assert "version" not in compose


def test_every_service_has_a_healthcheck(services):
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} disables its healthcheck"
        test = check.get("test")
        assert test and test != ["NONE"], f"{name} has an empty healthcheck"


def test_every_celery_command_names_an_app_that_exists(services):
    commands = celery_services(services)
    assert commands, "no celery service"
    for name, argv in commands.items():
        app_module = option(argv, "-A", "--app")
        assert app_module == "workers", f"{name} does not run `celery -A workers`: {argv}"
        module = importlib.import_module(app_module)
        assert isinstance(module.app, Celery), f"{app_module}.app is not a Celery app"


def test_worker_queues_exist_and_cover_every_queue(services):
    workers = celery_services(services, "worker")
    assert workers, "no worker service"
    consumed = set()
    for name, argv in workers.items():
        queues = option(argv, "-Q", "--queues")
        assert queues, f"{name} names no queues (-Q)"
        names = {q.strip() for q in queues.split(",") if q.strip()}
        unknown = names - set(celeryconfig.QUEUES)
        assert not unknown, f"{name} consumes queues not in celeryconfig.QUEUES: {sorted(unknown)}"
        consumed |= names
    missing = set(celeryconfig.QUEUES) - consumed
    assert not missing, f"no worker service consumes {sorted(missing)}"


def test_exactly_one_beat(services):
    beats = celery_services(services, "beat")
    assert len(beats) == 1, f"expected exactly one beat service, found {sorted(beats)}"
    (name,) = beats
    replicas = services[name].get("deploy", {}).get("replicas", 1)
    assert replicas == 1, f"{name} runs {replicas} replicas"


def test_api_serves_the_fastapi_app(services):
    argv = command(services["api"])
    assert argv[:1] == ["uvicorn"], argv
    app_spec = next(arg for arg in argv[1:] if not arg.startswith("-") and ":" in arg)
    assert app_spec == "producers.app:app", argv
    module_name, attribute = app_spec.split(":")
    app = getattr(importlib.import_module(module_name), attribute)
    assert isinstance(app, FastAPI)
    assert any(p.split(":")[-1] == "8000" for p in map(str, services["api"].get("ports", [])))


def test_scalable_worker_has_no_fixed_identity(services):
    worker = services[SCALABLE_WORKER]
    assert "container_name" not in worker
    assert "hostname" not in worker
    assert not host_ports(worker), f"{SCALABLE_WORKER} publishes fixed host ports"


def test_migrations_run_before_api_and_workers(services):
    assert command(services["migrate"]) == ["alembic", "upgrade", "head"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert (PROJECT_ROOT / "alembic.ini").is_file()
    assert (PROJECT_ROOT / "models" / "migrations" / "env.py").is_file()
    for name in ["api", *celery_services(services, "worker")]:
        depends = services[name].get("depends_on", {})
        condition = {dep: (depends[dep] or {}).get("condition") for dep in depends}
        assert condition.get("migrate") == "service_completed_successfully", f"{name}: {depends}"
        assert condition.get("redis") == "service_healthy", f"{name}: {depends}"


def test_api_and_workers_share_the_environment_and_metrics_folder(services):
    for name in ["api", *celery_services(services, "worker"), *celery_services(services, "beat")]:
        env = services[name].get("environment", {})
        assert isinstance(env, dict), f"{name}: environment must be a mapping"
        assert env.get("DATABASE_URL") == "postgresql+psycopg2://wacrm:wacrm@postgres:5432/wacrm", name
        assert env.get("CELERY_BROKER_URL") == "redis://redis:6379/0", name
        assert "ADMIN_TOKEN" in env and "WHATSAPP_APP_SECRET" in env, name
        assert env.get("PROMETHEUS_MULTIPROC_DIR") == METRICS_DIR, name
        assert f"metrics:{METRICS_DIR}" in services[name].get("volumes", []), name


def test_dockerfile_runs_the_api_as_a_non_root_user():
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    lines = [line.strip() for line in dockerfile.splitlines()]
    assert any(line.startswith("FROM python:3.11-slim") for line in lines)
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert METRICS_DIR in dockerfile
    assert 'CMD ["uvicorn", "producers.app:app", "--host", "0.0.0.0", "--port", "8000"]' in lines
    ignored = Path(PROJECT_ROOT / ".dockerignore").read_text().split()
    assert {".venv", "var", ".env"} <= set(ignored)
