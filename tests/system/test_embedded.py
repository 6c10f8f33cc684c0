"""The README's first command: the whole system on SQLite and a file broker, then the demo."""

from __future__ import annotations

import os
import subprocess
import sys

import requests

from testkit.processes import PROJECT_ROOT, free_port, wait_for


def test_embedded_system_runs_the_demo(tmp_path):
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "CELERY_BROKER_URL", "PROMETHEUS_MULTIPROC_DIR"}
    }
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'wacrm.sqlite3'}",
        BROKER_FOLDER=str(tmp_path / "broker"),
        ADMIN_TOKEN="embedded-token",
    )
    system = subprocess.Popen(
        [sys.executable, "-m", "cli", "up", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=(tmp_path / "up.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ready(url) or system.poll() is not None, 90, "the embedded system to be ready")
        assert system.poll() is None, (tmp_path / "up.log").read_text()[-3000:]
        demo = subprocess.run(
            [sys.executable, "-m", "cli", "demo", "--url", url],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert "Budi Santoso +6281212345678" in demo.stdout
        assert "source=ad:120210000000000001" in demo.stdout
        assert "unsupported (poll)" in demo.stdout
        assert '{"accepted":0,"duplicates":1}' in demo.stdout
        # The order's messages went through the sandbox gateway, as texts: Budi had just written.
        assert "stage=shipped" in demo.stdout, demo.stdout[-2500:]
        for title in ("Contact Order Created", "Contact Order Paid", "Contact Order Delivery"):
            assert f"{title:<24} sent     as text" in demo.stdout
    finally:
        system.terminate()
        system.wait(timeout=60)


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/readyz", timeout=1).status_code == 200
    except requests.RequestException:
        return False
