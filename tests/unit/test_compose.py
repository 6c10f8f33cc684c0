"""docker-compose.yml agrees with the code: the commands it runs exist, every queue is consumed,
every setting can reach the containers (.env), the FAQ is seeded.

No Docker engine is needed: the file is parsed and checked against the project's modules.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from celery import Celery
from fastapi import FastAPI

import celeryconfig
from settings import Settings
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


def bound_addresses(service: dict) -> list[str]:
    """The host address each published port listens on, as compose resolves it with no .env
    (``${X:-127.0.0.1}`` is its default); "" for a port published on every interface."""
    found = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            found.append(str(port.get("host_ip", "")))
            continue
        parts = str(port).rsplit(":", 2)
        address = parts[0] if len(parts) == 3 else ""
        found.append(re.sub(r"\$\{\w+:?-([^}]*)\}", r"\1", address))
    return found


def test_every_published_port_listens_on_the_loopback_only(services):
    """The webhooks, the API and Flower are reached through a reverse proxy on the host (TLS, which
    Meta requires), never straight from every interface."""
    for name, service in services.items():
        for address in bound_addresses(service):
            assert address == "127.0.0.1", f"{name} publishes a port on {address or 'every interface'}"
    assert bound_addresses(services["api"]) == ["127.0.0.1"]


def test_no_service_runs_in_development_mode(services):
    for name, service in services.items():
        env = service.get("environment") or {}
        names = env if isinstance(env, dict) else [item.split("=", 1)[0] for item in env]
        assert "DEVELOPMENT_MODE" not in {key.upper() for key in names}, name


MIGRATE_AND_SEED = "alembic upgrade head && python -m cli faq seed"


def test_migrations_run_before_api_workers_and_beat(services):
    assert command(services["migrate"]) == ["sh", "-c", MIGRATE_AND_SEED]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert (PROJECT_ROOT / "alembic.ini").is_file()
    assert (PROJECT_ROOT / "models" / "migrations" / "env.py").is_file()
    for name in ["api", *celery_services(services, "worker"), *celery_services(services, "beat")]:
        depends = services[name].get("depends_on", {})
        condition = {dep: (depends[dep] or {}).get("condition") for dep in depends}
        assert condition.get("migrate") == "service_completed_successfully", f"{name}: {depends}"
        assert condition.get("redis") == "service_healthy", f"{name}: {depends}"


def test_the_migrate_command_migrates_and_seeds_the_faq_once(tmp_path):
    """The migrate service's own command, run here on a fresh SQLite database: the schema, then
    the shipped FAQ; a second run (every `docker compose up`) leaves the FAQ alone."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'compose.sqlite3'}",
        # `alembic` and `python` as the image has them: this interpreter's.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    env.pop("AUTOMATION_FILE", None)

    def migrate() -> str:
        done = subprocess.run(
            ["sh", "-c", MIGRATE_AND_SEED],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    first = migrate()
    seeded = re.search(r"seeded (\d+) FAQ entries", first)
    assert seeded and int(seeded.group(1)) > 0, first
    exported = subprocess.run(
        [sys.executable, "-m", "cli", "faq", "export"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.count("[[faq]]") == int(seeded.group(1))
    assert "nothing seeded" in migrate()


def project_services(services: dict[str, dict]) -> dict[str, dict]:
    """The services that run this repository's code (built from its Dockerfile)."""
    return {name: s for name, s in services.items() if "build" in s or s.get("image") == "wacrm:local"}


def env_files(service: dict) -> list[tuple[str, bool]]:
    """(path, required) of the service's env_file entries."""
    value = service.get("env_file") or []
    entries = [value] if isinstance(value, str | dict) else value
    return [
        (entry, True) if isinstance(entry, str) else (entry["path"], entry.get("required", True))
        for entry in entries
    ]


def test_every_project_service_reads_the_env_file(services):
    found = project_services(services)
    assert {"api", "migrate", "beat", "worker", "flower"} <= set(found)
    for name, service in found.items():
        assert (".env", False) in env_files(service), f"{name} does not read .env: {service.get('env_file')}"
        env = service.get("environment", {})
        assert isinstance(env, dict), f"{name}: environment must be a mapping"
        # A variable named with no value here would stand in front of the one in .env.
        empty = [key for key, value in env.items() if value is None or value == ""]
        assert not empty, f"{name} names {empty} without a value"


def env_example() -> dict[str, tuple[str | None, list[str]]]:
    """NAME -> (value, or None when the line is commented out; the comment lines above it)."""
    entries: dict[str, tuple[str | None, list[str]]] = {}
    comment: list[str] = []
    for line in (PROJECT_ROOT / ".env.example").read_text().splitlines():
        assignment = re.fullmatch(r"(# )?([A-Z][A-Z0-9_]*)=(.*)", line)
        if assignment:
            commented, name, value = assignment.groups()
            assert name not in entries, f"{name} twice in .env.example"
            entries[name] = (None if commented else value, comment)
            comment = []
        elif line.startswith("#"):
            comment = [*comment, line]
        else:
            comment = []
    return entries


def test_env_example_lists_every_setting_with_its_default_and_a_comment():
    entries = env_example()
    fields = {name.upper(): field for name, field in Settings.model_fields.items()}
    missing = set(fields) - set(entries)
    assert not missing, f".env.example does not list {sorted(missing)}"
    for name in fields:
        assert entries[name][1], f"{name} has no comment above it in .env.example"
    active = {name: value for name, (value, _) in entries.items() if value is not None}
    assert {"BUSINESS_NAME", "BUSINESS_HOURS", "TARGET_LABEL", "TIMEZONE"} <= set(active)
    # What is written there is the default, and reads as settings.py reads the environment.
    parsed = Settings(**{name.lower(): value.strip('"') for name, value in active.items()})
    for name in active:
        assert getattr(parsed, name.lower()) == fields[name].default, name


def test_api_and_workers_share_the_environment_and_metrics_folder(services):
    for name in ["api", *celery_services(services, "worker"), *celery_services(services, "beat")]:
        env = services[name].get("environment", {})
        assert isinstance(env, dict), f"{name}: environment must be a mapping"
        assert env.get("DATABASE_URL") == "postgresql+psycopg2://wacrm:wacrm@postgres:5432/wacrm", name
        assert env.get("CELERY_BROKER_URL") == "redis://redis:6379/0", name
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
