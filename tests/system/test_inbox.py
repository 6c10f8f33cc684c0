"""The team inbox (/inbox) on the real stack: the webhook, the Celery workers (ingest, routing,
outbound) on a private Redis and the tests' PostgreSQL, the fake Cloud API over real HTTP.

The API half (close, reopen, notes) and the forms' answers are read through the app's
TestClient; what a person sees is read in a real headless Chromium (Selenium) against the app
served by uvicorn, as tests/system/test_dashboard.py does."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import func, select

from models import AuditEntry, Conversation, Message, OutboundMessage
from models.db import session_scope
from testkit import samples
from testkit.processes import wait_for
from tests.system.test_dashboard import browser, server  # noqa: F401 (the fixtures)
from tests.system.test_routing import settled

pytestmark = pytest.mark.usefixtures("worker")

PASSWORD = "es-teh-manis-dingin-9"
SITI, BUDI = "6285711112222", "6281212345678"
HOT_TEXT = "Halo kak, berapa harganya yang ukuran L?"


def write(client, wa_id: str, text: str, name: str = "Siti Rahma") -> None:
    body, headers = samples.encode(samples.inbound_text(wa_id, name, text))
    assert client.post("/webhooks/whatsapp", content=body, headers=headers).status_code == 200


def account(
    client, admin_headers, login: str, role: str = "agent", teams: tuple[str, ...] = ("sales",)
) -> None:
    body = {"login": login, "role": role, "teams": list(teams), "password": PASSWORD}
    assert client.post("/api/agents", json=body, headers=admin_headers).status_code == 201, login


def signed_in(make_client, login: str):
    """A TestClient holding a browser session (the cookie) of this account, and its CSRF token."""
    signed = make_client()
    answer = signed.post(
        "/dashboard/login",
        data={"login": login, "password": PASSWORD, "next": "/inbox"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/inbox", answer.text
    page = signed.get("/inbox")
    assert page.status_code == 200, page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    return signed, csrf


def bearer(client, login: str) -> dict[str, str]:
    token = client.post("/api/auth/token", json={"login": login, "password": PASSWORD}).json()["token"]
    return {"Authorization": f"Bearer {token}"}


def conversation_of(wa_id: str) -> int:
    with session_scope() as session:
        return session.scalar(
            select(Conversation.id)
            .join(Message, Message.conversation_id == Conversation.id)
            .where(Message.direction == "inbound")
            .order_by(Conversation.id.desc())
            .limit(1)
        )


def test_close_reopen_and_notes_through_the_api_are_audited_and_kept_to_the_team(
    client, make_client, admin_headers
):
    account(client, admin_headers, "ayu")
    account(client, admin_headers, "bayu")
    account(client, admin_headers, "tono", teams=("support",))
    write(client, SITI, HOT_TEXT)
    settled()
    conversation = conversation_of(SITI)
    ayu, tono = bearer(client, "ayu"), bearer(client, "tono")

    closed = client.post(f"/api/conversations/{conversation}/close", headers=ayu)
    assert closed.status_code == 200 and closed.json()["closed_reason"] == "closed by ayu"
    assert client.post(f"/api/conversations/{conversation}/reopen", headers=ayu).json()["closed_at"] is None
    note = client.post(
        f"/api/conversations/{conversation}/notes",
        json={"text": "Tolong cek stok L, @bayu (cc @nobody, budi@example.com)"},
        headers=ayu,
    )
    assert note.status_code == 201 and note.json()["mentions"] == ["bayu"]
    assert (
        client.post(f"/api/conversations/{conversation}/notes", json={"text": "  "}, headers=ayu).status_code
        == 422
    )
    [listed] = client.get(f"/api/conversations/{conversation}/notes", headers=ayu).json()
    assert listed["author"] == "ayu"
    # Another team's agent: the conversation does not exist for them, nothing changes.
    assert client.post(f"/api/conversations/{conversation}/close", headers=tono).status_code == 404
    assert client.get(f"/api/conversations/{conversation}/notes", headers=tono).status_code == 404
    with session_scope() as session:
        actions = session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.subject == f"conversation:{conversation}")
            .order_by(AuditEntry.id)
        ).all()
        assert actions == ["conversation.closed", "conversation.reopened", "conversation.noted"]
        assert session.get(Conversation, conversation).closed_at is None
    # A note is never sent to the customer.
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(OutboundMessage)) == 0


def test_the_reply_form_refuses_a_long_text_and_sends_a_double_submit_once(
    client, make_client, admin_headers
):
    account(client, admin_headers, "ayu")
    account(client, admin_headers, "tono", teams=("support",))
    write(client, SITI, HOT_TEXT)
    settled()
    conversation = conversation_of(SITI)
    ayu, csrf = signed_in(make_client, "ayu")
    page = ayu.get(f"/inbox/conversations/{conversation}")
    assert page.status_code == 200 and HOT_TEXT in page.text
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text).group(1)
    seen = re.search(r'name="outbox_seen" value="([^"]+)"', page.text).group(1)
    form = {"csrf": csrf, "idempotency_key": key, "outbox_seen": seen, "owner_seen": ""}

    too_long = ayu.post(f"/inbox/conversations/{conversation}/reply", data={**form, "text": "x" * 4097})
    assert too_long.status_code == 422
    assert "4097 karakter; WhatsApp menerima paling banyak 4096" in too_long.text  # Indonesian by default
    without_csrf = ayu.post(
        f"/inbox/conversations/{conversation}/reply", data={**form, "csrf": "", "text": "hi"}
    )
    assert without_csrf.status_code == 403
    for _ in range(2):  # a double click: the same form twice
        sent = ayu.post(
            f"/inbox/conversations/{conversation}/reply", data={**form, "text": "Ada kak, Rp 150.000"}
        )
        assert sent.status_code == 200
    assert "sudah terkirim; tidak dikirim dua kali" in sent.text
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(OutboundMessage)) == 1
    # The page of another team's conversation: 404 for their agent.
    other, _ = signed_in(make_client, "tono")
    assert other.get(f"/inbox/conversations/{conversation}").status_code == 404
    # Not signed in: the sign-in page, then back to the conversation.
    anonymous = make_client().get(f"/inbox/conversations/{conversation}", follow_redirects=False)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/inbox/login?next=")


T = TypeVar("T")

SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"


def steady(act: Callable[[], T]) -> T | None:
    """``act()``, or None when the live queue re-rendered the element meanwhile (find it again)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        return act()
    except (StaleElementReferenceException, NoSuchElementException):
        return None


def test_an_agent_sees_a_hot_conversation_arrive_replies_and_the_page_fits_a_phone(
    server,  # noqa: F811
    browser,  # noqa: F811
    client,
    admin_headers,
    cloud_api,
):
    from selenium.webdriver.common.by import By

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    account(client, admin_headers, "ayu")
    browser.delete_all_cookies()
    browser.get(f"{server}/inbox")
    wait_for(lambda: browser.find_elements(By.ID, "password"), 10, "the sign-in page")
    browser.save_screenshot(str(SCREENSHOTS / "inbox-login.png"))
    browser.find_element(By.ID, "login").send_keys("ayu")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    wait_for(lambda: browser.find_elements(By.ID, "queue"), 15, "the queue after signing in")

    name = "<script>alert(1)</script> Siti"
    write(client, SITI, HOT_TEXT, name=name)

    def hot_row_text() -> str:
        return browser.find_element(By.CSS_SELECTOR, ".queue .row.hot").text

    def open_hot_row() -> bool:
        browser.find_element(By.CSS_SELECTOR, ".queue .row.hot a.open").click()
        return True

    assert name in wait_for(lambda: steady(hot_row_text), 60, "the hot row, live")  # text, never run
    browser.save_screenshot(str(SCREENSHOTS / "inbox-queue.png"))
    wait_for(lambda: steady(open_hot_row), 15, "opening the hot row")
    box = wait_for(lambda: browser.find_elements(By.ID, "reply-text"), 15, "the conversation page")
    box[0].send_keys("Ada kak, ukuran L Rp 150.000")
    browser.find_element(By.ID, "send").click()
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#flash.ok"), 15, "sent")
    wait_for(
        lambda: any(
            b.get("text", {}).get("body") == "Ada kak, ukuran L Rp 150.000" for _, b in cloud_api.sent_bodies
        ),
        60,
        "the reply at the Cloud API",
    )
    assert [n for n, b in cloud_api.sent_bodies] == [cloud_api.phone_number_id]
    browser.save_screenshot(str(SCREENSHOTS / "inbox-conversation.png"))
    browser.set_window_size(390, 844)
    try:
        browser.refresh()
        wait_for(lambda: browser.find_elements(By.ID, "reply-text"), 15, "the page at 390 px")
        assert browser.execute_script("return document.documentElement.scrollWidth <= 390")
        browser.save_screenshot(str(SCREENSHOTS / "inbox-conversation-390.png"))
    finally:
        browser.set_window_size(1200, 2400)
        browser.delete_all_cookies()


def test_a_supervisor_reads_the_team_figures_page_and_an_agent_may_not(
    server,  # noqa: F811
    browser,  # noqa: F811
    client,
    admin_headers,
    make_client,
):
    from selenium.webdriver.common.by import By

    account(client, admin_headers, "ayu")
    account(client, admin_headers, "sri", role="supervisor")
    write(client, SITI, HOT_TEXT, name="<b>Siti</b>")
    settled()
    agent, _ = signed_in(make_client, "ayu")
    assert agent.get("/inbox/figures").status_code == 403
    supervisor, _ = signed_in(make_client, "sri")
    wrong = supervisor.get("/inbox/figures", params={"since": "2026-02-01", "until": "2026-01-01"})
    assert wrong.status_code == 422 and 'id="period-error"' in wrong.text

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.delete_all_cookies()
    browser.get(f"{server}/inbox/figures")
    wait_for(lambda: browser.find_elements(By.ID, "password"), 10, "the sign-in page")
    browser.find_element(By.ID, "login").send_keys("sri")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    table = wait_for(lambda: browser.find_elements(By.ID, "agents"), 15, "the figures page")
    rows = {
        r.find_element(By.TAG_NAME, "th").text: r.text
        for r in table[0].find_elements(By.CSS_SELECTOR, "tbody tr")
    }
    assert rows["ayu"].split()[1] == "1"  # Siti's conversation is Ayu's
    assert "Angka tim" in browser.title  # Indonesian by default
    channels = browser.find_element(By.ID, "channels").text
    assert "settings" in channels
    browser.save_screenshot(str(SCREENSHOTS / "inbox-figures.png"))
    browser.set_window_size(390, 844)
    try:
        browser.refresh()
        wait_for(lambda: browser.find_elements(By.ID, "agents"), 15, "the figures page at 390 px")
        assert browser.execute_script("return document.documentElement.scrollWidth <= 390")
        browser.save_screenshot(str(SCREENSHOTS / "inbox-figures-390.png"))
    finally:
        browser.set_window_size(1200, 2400)
        browser.delete_all_cookies()
