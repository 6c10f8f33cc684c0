"""Run the whole system in one terminal: migrations, the API, one worker, beat.

The same commands production uses (uvicorn, ``celery -A workers worker|beat``), as child
processes. With no DATABASE_URL / CELERY_BROKER_URL set they share ./var: a SQLite database and
a broker made of files, so nothing but Python is needed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time

from cli import faq
from models.migrate import upgrade_to_head
from settings import VAR_DIR, settings


def run(host: str, port: int, concurrency: int) -> None:
    VAR_DIR.mkdir(exist_ok=True)
    upgrade_to_head()
    faq.seed_if_empty(settings.automation_file)
    env = dict(os.environ)
    env.setdefault("ADMIN_TOKEN", _admin_token())
    metrics_dir = VAR_DIR / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir()
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)

    python = sys.executable
    commands = {
        "api": [python, "-m", "uvicorn", "producers.app:app", "--host", host, "--port", str(port)],
        "worker": [python, "-m", "celery", "-A", "workers", "worker", "-c", str(concurrency), "-l", "INFO"],
        "beat": [python, "-m", "celery", "-A", "workers", "beat", "-l", "INFO"],
    }
    children = {name: subprocess.Popen(cmd, env=env) for name, cmd in commands.items()}
    print(
        f"\nWhatsApp CRM is running on {settings.database_url.split(':', 1)[0]} "
        f"and {settings.celery_broker_url.split(':', 1)[0]}.\n"
        f"  webhooks  http://{host}:{port}/webhooks/whatsapp\n"
        f"  API docs  http://{host}:{port}/docs   (Authorization: Bearer {env['ADMIN_TOKEN']})\n"
        f"  metrics   http://{host}:{port}/metrics\n"
        "Try it from another terminal: ./run demo    Stop: Ctrl-C\n",
        flush=True,
    )
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping:
            exited = [name for name, child in children.items() if child.poll() is not None]
            if exited:
                print(f"{', '.join(exited)} stopped; shutting down the rest", file=sys.stderr)
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


def _admin_token() -> str:
    """ADMIN_TOKEN for this machine's embedded run, made once and kept under ./var."""
    path = VAR_DIR / "admin-token"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()
