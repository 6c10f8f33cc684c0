"""The README's first commands as a newcomer meets them: ./run (the whole system on SQLite and a
file broker), its banner, ./run demo, and what either says when something is in the way."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from settings import VAR_DIR
from testkit.processes import PROJECT_ROOT, free_port, wait_for

TOKEN = "embedded-token-Zr4Vq8Lm2Kx"
BANNER_END = "Next, in another terminal: ./run demo"


@dataclass
class System:
    url: str
    port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line(done: subprocess.CompletedProcess) -> str:
    """What a refusal printed, asserted to be one line and no traceback."""
    said = (done.stdout + done.stderr).strip()
    assert said and "\n" not in said, said
    assert "Traceback" not in said
    return said


@pytest.fixture(scope="module")
def system(tmp_path_factory) -> System:
    tmp_path = tmp_path_factory.mktemp("embedded")
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        # DEVELOPMENT_MODE too: ./run sets it itself, as on a newcomer's machine.
        if key not in {"DATABASE_URL", "CELERY_BROKER_URL", "PROMETHEUS_MULTIPROC_DIR", "DEVELOPMENT_MODE"}
    }
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'wacrm.sqlite3'}",
        BROKER_FOLDER=str(tmp_path / "broker"),
        ADMIN_TOKEN=TOKEN,
    )
    log = tmp_path / "up.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "up", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    started = System(f"http://127.0.0.1:{port}", port, env, log, process)
    try:
        wait_for(
            lambda: BANNER_END in started.output() or process.poll() is not None,
            120,
            "./run to print its banner",
        )
        assert process.poll() is None, started.output()[-3000:]
        yield started
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_banner_comes_after_the_start_up_noise_and_says_where_to_go(system):
    output = system.output()
    banner = output[output.rindex("WhatsApp CRM is running") :]
    url = system.url
    for line in (
        f"API          {url}/api/contacts",
        f"API docs     {url}/docs",
        f"dashboard    {url}/dashboard  (sign in with the admin token)",
        f"metrics      {url}/metrics",
        "signatures   DEVELOPMENT_MODE=true: a webhook whose secret is unset takes unsigned requests",
        f"admin token  {TOKEN}  (ADMIN_TOKEN in the environment)",
        BANNER_END,
    ):
        assert line in banner, banner
    # Celery's start-up banners are in var/log, not in the terminal.
    assert "[queues]" not in output and "celery@" not in output, output[-3000:]
    assert "[queues]" in (VAR_DIR / "log" / "worker.log").read_text(errors="replace")
    assert (VAR_DIR / "log" / "beat.log").exists()


def test_docs_load_nothing_from_another_host(system):
    for page in ("/docs", "/redoc"):
        answer = requests.get(system.url + page, timeout=10)
        assert answer.status_code == 200, page
        html = answer.text
        assert "http://" not in html and "https://" not in html, html
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
        assert any(a.endswith(".js") for a in assets) and assets, html
        for asset in assets:
            assert asset.startswith("/") and not asset.startswith("//"), asset
            served = requests.get(system.url + asset, timeout=10)
            assert served.status_code == 200 and served.content, asset
    assert requests.get(system.url + "/openapi.json", timeout=10).json()["openapi"]


def test_demo_fills_the_api_and_the_dashboard_and_says_where_to_look(system):
    demo = cli("demo", "--url", system.url, env=system.env)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    out = demo.stdout
    assert "Budi Santoso +6281212345678" in out
    assert "source=ad:120210000000000001" in out
    assert "unsupported (poll)" in out
    assert '{"accepted":0,"duplicates":1}' in out
    # The order's messages went through the (fake) Cloud API, as texts: Budi had just written.
    assert "stage=shipped" in out, out[-2500:]
    for title in ("Contact Order Created", "Contact Order Paid", "Contact Order Delivery"):
        assert f"{title:<24} sent     as text" in out

    # WAHA label events, signed as WAHA signs them, reached the labels and the dashboard.
    assert "Posting 6 WAHA label events" in out
    assert out.count('200 {"accepted":1,"duplicates":0}') >= 6 + 6
    assert re.search(
        r"Budi Santoso \+6281212345678 .* labels=(Grade A, Lead|Lead, Grade A)$", out, re.MULTILINE
    ), out
    auth = {"Authorization": f"Bearer {TOKEN}"}
    labels = requests.get(f"{system.url}/api/labels", headers=auth, timeout=10).json()
    assert {item["name"]: item["contacts"] for item in labels["items"]} == {"Grade A": 2, "Lead": 2}
    dashboard = requests.get(f"{system.url}/dashboard", headers=auth, timeout=10)
    assert dashboard.status_code == 200
    for shown in ("Grade A", "Budi Santoso", "Andi Wijaya", "Rina", "Dewi"):
        assert shown in dashboard.text, shown

    # Where to look, with a curl line that works as printed; and why replies depend on the hour.
    where = out[out.index("Where to look:") :]
    assert f"dashboard  {system.url}/dashboard" in where
    assert f"API docs   {system.url}/docs" in where
    assert "BUSINESS_HOURS=" in where and "out-of-hours reply" in where
    curl = next(line.split("contacts   ", 1)[1] for line in where.splitlines() if "contacts   curl" in line)
    assert "$ADMIN_TOKEN" in curl
    if shutil.which("curl"):
        fetched = subprocess.run(
            ["bash", "-c", f"{curl} --silent --fail"],
            env=system.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert fetched.returncode == 0 and '"Budi Santoso"' in fetched.stdout, fetched.stderr


def test_demo_with_another_admin_token_says_which_setting(system):
    demo = cli("demo", "--url", system.url, env={**system.env, "ADMIN_TOKEN": "not-the-token"})
    assert demo.returncode != 0
    said = one_line(demo)
    assert "ADMIN_TOKEN" in said and "401" in said


def test_demo_with_nothing_running_says_so_in_one_line():
    url = f"http://127.0.0.1:{free_port()}"
    demo = cli("demo", "--url", url, env=dict(os.environ), timeout=60)
    assert demo.returncode != 0
    assert one_line(demo) == f"nothing answers at {url}: start it with ./run first (or name it with --url)"


def test_a_second_run_on_the_same_port_says_what_to_do(system):
    second = cli("--port", str(system.port), env=system.env, timeout=60)
    assert second.returncode != 0
    said = one_line(second)
    assert f"port {system.port}" in said and f"--port {system.port + 1}" in said, said
    assert "Errno" not in said
    # ... and left the running one alone.
    assert system.process.poll() is None
    assert requests.get(f"{system.url}/readyz", timeout=10).status_code == 200


def test_the_first_admin_is_made_with_run_agents_add_and_signs_in(system):
    """On the embedded defaults (SQLite): ./run agents add with --password-stdin, a weak password
    refused in one line naming the rule, ./run agents list, then the account signs in."""
    weak = subprocess.run(
        [sys.executable, "-m", "cli", "agents", "add", "boss", "--role", "admin", "--password-stdin"],
        cwd=PROJECT_ROOT,
        env=system.env,
        input="boss\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert weak.returncode != 0 and "password:" in one_line(weak)
    made = subprocess.run(
        [sys.executable, "-m", "cli", "agents", "add", "boss", "--role", "admin", "--password-stdin"],
        cwd=PROJECT_ROOT,
        env=system.env,
        input="es-teler-segar-77\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0 and "created boss (admin" in made.stdout, made.stderr
    listed = cli("agents", "list", env=system.env)
    assert re.search(r"^boss\tadmin\t", listed.stdout, re.MULTILINE), listed.stdout
    signed_in = requests.post(
        f"{system.url}/api/auth/token", json={"login": "boss", "password": "es-teler-segar-77"}, timeout=10
    )
    assert signed_in.status_code == 200, signed_in.text
    auth = {"Authorization": f"Bearer {signed_in.json()['token']}"}
    agents = requests.get(f"{system.url}/api/agents", headers=auth, timeout=10).json()
    assert [(a["login"], a["role"]) for a in agents] == [("boss", "admin")]


def test_help_lists_every_command_and_explains_every_option():
    shown = cli("--help", env=dict(os.environ), timeout=60)
    assert shown.returncode == 0, shown.stderr
    for command in ("up", "demo", "migrate", "faq", "agents", "test", "bench"):
        assert re.search(rf"^\s+{command}\s+\S", shown.stdout, re.MULTILINE), (command, shown.stdout)

    from cli.__main__ import build_parser

    parser = build_parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, command in commands.choices.items():
        for action in command._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help, f"./run {name} {action.option_strings or action.dest} has no help"
