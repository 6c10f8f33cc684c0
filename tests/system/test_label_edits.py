"""A person gives a contact a label or takes one away (the API the scripts use, and the inbox's
contact panel): recorded in the label history with who did it, audited, kept to the caller's
teams, and mirrored to WAHA when the chat is a WAHA one, without the echo counting twice.

Real PostgreSQL, Redis and Celery workers (the ``labels`` queue); WAHA is the fake of testkit/
over real HTTP, its webhooks posted signed with the channel's secret.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from models import AuditEntry
from models.db import session_scope
from settings import settings
from testkit import samples
from testkit.fakes.waha import FakeWaha
from testkit.processes import wait_for
from tests.system.test_dashboard import browser, server  # noqa: F401 (the fixtures)
from tests.system.test_inbox import PASSWORD, account, bearer, conversation_of, write
from tests.system.test_label_flow import assert_chart_matches_history
from tests.system.test_routing import settled

pytestmark = pytest.mark.usefixtures("worker")

SITI, BUDI = "6285711112222", "6281212345678"
BUDI_CHAT = f"{BUDI}@c.us"
W = {
    "name": "toko-surabaya",
    "kind": "waha",
    "session": "surabaya",
    "api_key": "waha-api-key-of-surabaya",
    "hmac_key": "waha-hmac-of-surabaya",
    "team": "surabaya",
}


def contact_id_of(client, headers, wa_id: str) -> int:
    [contact] = client.get("/api/contacts", params={"phone": f"+{wa_id}"}, headers=headers).json()["items"]
    return contact["id"]


def detail(client, headers, contact_id: int) -> dict:
    answer = client.get(f"/api/contacts/{contact_id}", headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def audited(contact_id: int) -> list[tuple[str, str, str]]:
    with session_scope() as session:
        rows = session.execute(
            select(AuditEntry.actor, AuditEntry.action, AuditEntry.details)
            .where(AuditEntry.subject == f"contact:{contact_id}")
            .order_by(AuditEntry.id)
        ).all()
    return [(actor, action, details["label"]) for actor, action, details in rows]


def test_an_agent_labels_a_cloud_contact_through_the_api_recorded_audited_and_kept_to_the_team(
    client, admin_headers
):
    account(client, admin_headers, "ayu")
    account(client, admin_headers, "tono", teams=("support",))
    write(client, SITI, "Halo kak, berapa harganya?")
    settled()
    ayu, tono = bearer(client, "ayu"), bearer(client, "tono")
    siti = contact_id_of(client, admin_headers, SITI)
    path = f"/api/contacts/{siti}/labels"

    added = client.post(f"{path}/Grade A", headers=ayu)
    assert added.status_code == 201, added.text
    assert added.json() | {"detail": ""} == {
        "contact_id": siti,
        "label": "Grade A",
        "changed": True,
        "detail": "",
        "labels": ["Grade A"],
        "mirrored_to_waha": False,  # a Cloud API chat: no label API, kept here only
    }
    # The same again, in another letter case: nothing new, and it says so.
    again = client.post(f"{path}/grade a", headers=ayu)
    assert again.status_code == 200 and again.json()["changed"] is False
    assert "already" in again.json()["detail"]
    # Bad input names the problem and changes nothing.
    for bad, why in ((" ", "needs a name"), ("x" * 101, "at most 100")):
        refused = client.post(f"{path}/{bad}", headers=ayu)
        assert refused.status_code == 422 and why in refused.text, refused.text
    assert client.post("/api/contacts/999999/labels/Lead", headers=admin_headers).status_code == 404
    # Another team's agent: the contact does not exist for them.
    assert client.post(f"{path}/Lead", headers=tono).status_code == 404
    assert client.delete(f"{path}/Grade A", headers=tono).status_code == 404

    shown = detail(client, admin_headers, siti)
    assert shown["labels"] == ["Grade A"]
    [change] = shown["label_history"]
    assert (change["label"], change["action"], change["staff"], change["cause"], change["applied"]) == (
        "Grade A",
        "added",
        "ayu",
        "api",
        True,
    )
    figures = client.get("/api/labels", headers=admin_headers).json()
    [grade_a] = [item for item in figures["items"] if item["name"] == "Grade A"]
    assert grade_a["contacts"] == 1 and grade_a["by_staff"] == [{"staff": "ayu", "contacts": 1}]

    removed = client.delete(f"{path}/GRADE A", headers=ayu)
    assert removed.status_code == 200 and removed.json()["changed"] is True
    assert removed.json()["labels"] == []
    not_there = client.delete(f"{path}/Grade A", headers=ayu)
    assert not_there.status_code == 200 and not_there.json()["changed"] is False
    assert "no label" in not_there.json()["detail"]

    history = detail(client, admin_headers, siti)["label_history"]
    assert [(h["action"], h["staff"]) for h in history] == [("added", "ayu"), ("removed", "ayu")]
    assert audited(siti) == [
        ("ayu", "contact.label_added", "Grade A"),
        ("ayu", "contact.label_removed", "Grade A"),
    ]


@pytest.fixture
def waha():
    with FakeWaha(api_key=W["api_key"]) as fake:
        yield fake


def post_waha(client, envelope: dict) -> None:
    body, headers = samples.waha_encode(envelope, W["hmac_key"])
    answer = client.post("/webhooks/waha", content=body, headers=headers)
    assert answer.status_code == 200, answer.text


def test_a_label_given_in_the_inbox_reaches_the_waha_chat_and_its_echo_is_not_counted_twice(
    client, admin_headers, waha, drained
):
    account(client, admin_headers, "citra", teams=("surabaya",))
    spec = {**W, "waha_url": waha.url}
    assert client.post("/api/channels", json=spec, headers=admin_headers).status_code == 201
    waha.add_label("surabaya", "1", "Lead")  # made by staff in the app; we have not heard of it
    post_waha(client, samples.waha_message(BUDI_CHAT, "Halo, masih ada?", session="surabaya"))
    settled()
    citra = bearer(client, "citra")
    budi = contact_id_of(client, admin_headers, BUDI)
    path = f"/api/contacts/{budi}/labels"

    waha.fail_next(503)  # WAHA is busy once: the task tries again
    added = client.post(f"{path}/Lead", headers=citra)
    assert added.status_code == 201 and added.json()["mirrored_to_waha"] is True, added.text
    wait_for(lambda: waha.label_puts() == [("surabaya", BUDI_CHAT, ["1"])], 30, "Lead set in WAHA")
    # A label WAHA does not have yet is created there first, then the chat gets both.
    assert client.post(f"{path}/Siap beli", headers=citra).status_code == 201
    wait_for(lambda: waha.chat_labels.get(("surabaya", BUDI_CHAT)) == ["1", "2"], 30, "both in WAHA")
    assert [label["name"] for label in waha.labels["surabaya"]] == ["Lead", "Siap beli"]

    # WAHA reports our own changes back: the new label, and the chat's two labels.
    post_waha(client, samples.waha_label_upsert("2", "Siap beli", session="surabaya"))
    for label_id in ("1", "2"):
        post_waha(client, waha.label_echo("surabaya", BUDI_CHAT, label_id, "added"))
    drained()
    shown = detail(client, admin_headers, budi)
    assert shown["labels"] == ["Lead", "Siap beli"]
    assert [(h["label"], h["action"], h["staff"]) for h in shown["label_history"]] == [
        ("Lead", "added", "citra"),
        ("Siap beli", "added", "citra"),
    ]

    removed = client.delete(f"{path}/Lead", headers=citra)
    assert removed.status_code == 200 and removed.json()["labels"] == ["Siap beli"]
    wait_for(lambda: waha.chat_labels.get(("surabaya", BUDI_CHAT)) == ["2"], 30, "Lead taken away in WAHA")
    post_waha(client, waha.label_echo("surabaya", BUDI_CHAT, "1", "deleted"))
    drained()
    history = detail(client, admin_headers, budi)["label_history"]
    assert [(h["label"], h["action"]) for h in history] == [
        ("Lead", "added"),
        ("Siap beli", "added"),
        ("Lead", "removed"),
    ]
    # A change made on the phone afterwards is still recorded, with the staff who made it.
    post_waha(client, waha.label_echo("surabaya", BUDI_CHAT, "2", "deleted", metadata={"staff": "Rina"}))
    drained()
    last = detail(client, admin_headers, budi)["label_history"][-1]
    assert (last["label"], last["action"], last["staff"]) == ("Siap beli", "removed", "Rina")
    assert [action for _, action, _ in audited(budi)] == [
        "contact.label_added",
        "contact.label_added",
        "contact.label_removed",
    ]


def test_a_new_label_whose_waha_upsert_arrives_before_waha_answers_is_one_label(
    client, admin_headers, waha, drained
):
    """WAHA may announce the label it just made (``label.upsert``) before it answers our POST:
    the label then exists twice for a moment, ours and WAHA's; they become one."""
    account(client, admin_headers, "citra", teams=("surabaya",))
    assert (
        client.post("/api/channels", json={**W, "waha_url": waha.url}, headers=admin_headers).status_code
        == 201
    )
    post_waha(client, samples.waha_message(BUDI_CHAT, "Halo, masih ada?", session="surabaya"))
    settled()
    budi = contact_id_of(client, admin_headers, BUDI)

    def announce(session: str, label: dict) -> None:
        post_waha(client, samples.waha_label_upsert(label["id"], label["name"], session=session))
        drained()

    waha.on_label_created = announce
    added = client.post(f"/api/contacts/{budi}/labels/VIP", headers=bearer(client, "citra"))
    assert added.status_code == 201, added.text
    wait_for(lambda: waha.label_puts() == [("surabaya", BUDI_CHAT, ["1"])], 30, "VIP set in WAHA")
    post_waha(client, waha.label_echo("surabaya", BUDI_CHAT, "1", "added"))
    drained()
    shown = detail(client, admin_headers, budi)
    assert shown["labels"] == ["VIP"]
    assert [(h["label"], h["action"], h["staff"]) for h in shown["label_history"]] == [
        ("VIP", "added", "citra")
    ]
    figures = client.get("/api/labels", headers=admin_headers).json()["items"]
    assert [(item["name"], item["contacts"], item["sessions"]) for item in figures] == [
        ("VIP", 1, ["surabaya"])
    ]
    # The labels page's chart: Budi entered VIP today, once, under the one label there is.
    today = assert_chart_matches_history(datetime.now(ZoneInfo(settings.timezone)).date())
    assert [(name, counts) for (name, _), counts in today.items()] == [("VIP", (1, 0))]
    # Taken away again: WAHA gets the empty set, for the one label there is.
    assert (
        client.delete(f"/api/contacts/{budi}/labels/vip", headers=bearer(client, "citra")).status_code == 200
    )
    wait_for(lambda: waha.chat_labels.get(("surabaya", BUDI_CHAT)) == [], 30, "VIP taken away in WAHA")


def test_an_agent_adds_and_removes_a_label_in_the_contact_panel(
    server,  # noqa: F811
    browser,  # noqa: F811
    client,
    admin_headers,
):
    from selenium.webdriver.common.by import By

    account(client, admin_headers, "ayu")
    write(client, SITI, "Halo kak, berapa harganya?")
    settled()
    conversation = conversation_of(SITI)
    browser.delete_all_cookies()
    browser.get(f"{server}/inbox/conversations/{conversation}")
    wait_for(lambda: browser.find_elements(By.ID, "password"), 10, "the sign-in page")
    browser.find_element(By.ID, "login").send_keys("ayu")
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    box = wait_for(lambda: browser.find_elements(By.ID, "label-name"), 15, "the conversation page")
    try:
        box[0].send_keys("Siap beli")
        browser.find_element(By.ID, "label-add").click()
        wait_for(
            lambda: (
                [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#labels .label")] == ["Siap beli"]
            ),
            15,
            "the label in the panel",
        )
        assert browser.find_element(By.ID, "flash").text == "Label Siap beli ditambahkan."
        browser.find_element(By.CSS_SELECTOR, "#labels .remove-label").click()
        wait_for(lambda: not browser.find_elements(By.CSS_SELECTOR, "#labels .label"), 15, "the label gone")
        browser.set_window_size(390, 844)  # the panel's forms fit a phone
        browser.refresh()
        wait_for(lambda: browser.find_elements(By.ID, "label-name"), 15, "the page at 390 px")
        assert browser.execute_script("return document.documentElement.scrollWidth <= 390")
    finally:
        browser.set_window_size(1200, 2400)
        browser.delete_all_cookies()
    siti = contact_id_of(client, admin_headers, SITI)
    history = detail(client, admin_headers, siti)["label_history"]
    assert [(h["label"], h["action"], h["staff"]) for h in history] == [
        ("Siap beli", "added", "ayu"),
        ("Siap beli", "removed", "ayu"),
    ]
