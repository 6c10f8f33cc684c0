"""Run the whole system in one terminal: migrations, the API, one worker, beat.

The same commands production uses (uvicorn, ``celery -A workers worker|beat``), as child
processes. With no DATABASE_URL / CELERY_BROKER_URL set they share ./var: a SQLite database and
a broker made of files, so nothing but Python is needed. The API logs to this terminal; the
worker and beat log to var/log/, and once all three are up one block says where to go.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

from cli import faq
from models.migrate import upgrade_to_head
from settings import PROJECT_ROOT, VAR_DIR, settings

ADMIN_TOKEN_FILE = VAR_DIR / "admin-token"
# The embedded run's SECRET_KEY (channel secrets at rest), made once like the admin token.
SECRET_KEY_FILE = VAR_DIR / "secret-key"
LOG_DIR = VAR_DIR / "log"
STARTUP_SECONDS = 120


def run(host: str, port: int, concurrency: int) -> None:
    _check_port(host, port)
    VAR_DIR.mkdir(exist_ok=True)
    upgrade_to_head()
    faq.seed_if_empty(settings.automation_file)
    env = dict(os.environ)
    token_source = "ADMIN_TOKEN in the environment"
    if not env.get("ADMIN_TOKEN"):
        env["ADMIN_TOKEN"] = _admin_token()
        token_source = f"kept in {_shown(ADMIN_TOKEN_FILE)}; ADMIN_TOKEN overrides it"
    if not env.get("SECRET_KEY"):
        env["SECRET_KEY"] = _admin_token(SECRET_KEY_FILE)  # ./run channels reads the same file
    metrics_dir = VAR_DIR / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir()
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    # A machine running ./run is a development machine: webhooks without a secret take unsigned
    # requests (./run demo, the README's curl lines), unless DEVELOPMENT_MODE says otherwise.
    development_mode = settings.development_mode
    if "DEVELOPMENT_MODE" not in {name.upper() for name in env}:
        env["DEVELOPMENT_MODE"] = "true"
        development_mode = True
    LOG_DIR.mkdir(exist_ok=True)
    logs = {name: LOG_DIR / f"{name}.log" for name in ("worker", "beat")}

    python = sys.executable
    commands = {
        "api": [python, "-m", "uvicorn", "producers.app:app", "--host", host, "--port", str(port)],
        "worker": [python, "-m", "celery", "-A", "workers", "worker", "-c", str(concurrency), "-l", "INFO"],
        "beat": [python, "-m", "celery", "-A", "workers", "beat", "-l", "INFO"],
    }
    children = {}
    for name, cmd in commands.items():
        output = logs[name].open("w") if name in logs else None
        children[name] = subprocess.Popen(
            cmd, env=env, stdout=output, stderr=subprocess.STDOUT if output else None
        )
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    base = f"http://{_reachable(host)}:{port}"
    try:
        started = _wait_until_started(base, children, logs, lambda: stopping)
        if started:
            _banner(base, env["ADMIN_TOKEN"], token_source, logs, development_mode)
        while started and not stopping:
            exited = [name for name, child in children.items() if child.poll() is not None]
            if exited:
                print(f"{', '.join(exited)} stopped; shutting down the rest", file=sys.stderr)
                for name in exited:
                    _show_tail(logs.get(name))
                break
            time.sleep(0.5)
    finally:
        for child in children.values():
            if child.poll() is None:
                child.terminate()
        for child in children.values():
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
    sys.exit(0 if stopping else 1)


def _wait_until_started(
    base: str, children: dict[str, subprocess.Popen], logs: dict[str, Path], stopping: Callable[[], bool]
) -> bool:
    """True once the API is ready and the worker consumes (or after STARTUP_SECONDS: then with a
    line saying what is still starting); False if a process died first, or on Ctrl-C."""
    worker_log = logs["worker"]
    deadline = time.monotonic() + STARTUP_SECONDS
    api_ready = worker_ready = False
    while not stopping():
        exited = [name for name, child in children.items() if child.poll() is not None]
        if exited:
            print(f"{', '.join(exited)} stopped while starting; shutting down the rest", file=sys.stderr)
            for name in exited:
                _show_tail(logs.get(name))
            return False
        api_ready = api_ready or _answers(f"{base}/readyz")
        worker_ready = worker_ready or (
            worker_log.exists() and " ready." in worker_log.read_text(errors="replace")
        )
        if api_ready and worker_ready:
            return True
        if time.monotonic() > deadline:
            waiting = " and ".join(
                n for n, ok in (("the API", api_ready), ("the worker", worker_ready)) if not ok
            )
            print(f"still waiting for {waiting} after {STARTUP_SECONDS} s; going on", file=sys.stderr)
            return True
        time.sleep(0.5)
    return False


def _banner(base: str, token: str, token_source: str, logs: dict[str, Path], development_mode: bool) -> None:
    line = "-" * 72
    webhook_mode = (
        "DEVELOPMENT_MODE=true: a webhook whose secret is unset takes unsigned requests"
        if development_mode
        else "DEVELOPMENT_MODE=false: a webhook whose secret is unset answers 503"
    )
    database, broker = (url.split(":", 1)[0] for url in (settings.database_url, settings.celery_broker_url))
    print(
        f"\n{line}\n"
        f"WhatsApp CRM is running (database: {database}, broker: {broker}).\n"
        f"  API          {base}/api/contacts  (header Authorization: Bearer <admin token>)\n"
        f"  API docs     {base}/docs\n"
        f"  dashboard    {base}/dashboard  (sign in with the admin token)\n"
        f"  metrics      {base}/metrics\n"
        f"  webhooks     {base}/webhooks/whatsapp, /webhooks/waha, /webhooks/orders\n"
        f"  signatures   {webhook_mode}\n"
        f"  admin token  {token}  ({token_source})\n"
        f"  logs         the API's here; worker {_shown(logs['worker'])}, beat {_shown(logs['beat'])}\n"
        f"Next, in another terminal: ./run demo    Stop: Ctrl-C\n"
        f"{line}\n",
        flush=True,
    )


def _check_port(host: str, port: int) -> None:
    """One line instead of uvicorn's [Errno 98] when the port is taken (most often by another ./run)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                sys.exit(
                    f"port {port} on {host} is already in use (is ./run already running?): stop that, "
                    f"or start this one on another port: ./run --port {port + 1}"
                )
            sys.exit(f"cannot listen on {host}:{port}: {exc.strerror or exc} (see ./run up --help)")


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _reachable(host: str) -> str:
    """The address to show and probe: a wildcard address is reached on the loopback."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _show_tail(log: Path | None, lines: int = 15) -> None:
    if log is None or not log.exists():
        return
    tail = log.read_text(errors="replace").splitlines()[-lines:]
    print(f"last lines of {_shown(log)}:", *(f"  {t}" for t in tail), sep="\n", file=sys.stderr)


def _shown(path: Path) -> str:
    """A path as the person at the terminal would type it: relative to the project when inside it."""
    try:
        return str(path.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def _admin_token(path: Path = ADMIN_TOKEN_FILE) -> str:
    """ADMIN_TOKEN (or another secret, by ``path``) for this machine's embedded run, made once and
    kept under ./var."""
    if not path.exists() or not path.read_text().strip():
        # Owner-only from its first byte: mkstemp creates the file O_EXCL with mode 0600, and
        # the rename puts it (or replaces an empty one) in place whole.
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(descriptor, "w") as file:
                file.write(secrets.token_urlsafe(24))
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    return path.read_text().strip()


def current_admin_token() -> tuple[str, str] | None:
    """The token a ./run started from this environment uses, and where it comes from (the name
    to show): ADMIN_TOKEN when set, else the one kept in var/admin-token; None if neither."""
    if os.environ.get("ADMIN_TOKEN"):
        return os.environ["ADMIN_TOKEN"], "ADMIN_TOKEN"
    if ADMIN_TOKEN_FILE.exists() and ADMIN_TOKEN_FILE.read_text().strip():
        return ADMIN_TOKEN_FILE.read_text().strip(), _shown(ADMIN_TOKEN_FILE)
    return None
