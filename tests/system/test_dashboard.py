"""The label dashboard in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``) driven by Selenium against the real app served by ``uvicorn``, reading what
a person sees: the figures written in the charts, the contact list, and its search."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit import samples
from testkit.processes import api_server, wait_for
from testkit.waha import chat_of, label_contact, post_waha

pytestmark = pytest.mark.usefixtures("worker")

TOKEN = "dashboard-test-token-8fJq2LxZ"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
AD_ID = "120210000000000001"


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The real ASGI app under uvicorn, on the tests' database and broker, with ADMIN_TOKEN set."""
    with api_server("dashboard", {"ADMIN_TOKEN": TOKEN}) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"headless Chromium is needed for the dashboard tests but {', '.join(missing)} is missing: "
            "install the Debian packages with `apt-get install -y chromium chromium-driver`"
        )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is not installed: pip install -e '.[test]'")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,2400"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def cloud_message(client, wa_id: str, name: str, **extra) -> None:
    body, headers = samples.encode(samples.inbound_text(wa_id, name, "Halo, masih ada stok?", **extra))
    assert client.post("/webhooks/whatsapp", content=body, headers=headers).status_code == 200


def seed(client, drained) -> None:
    """Rina labels three leads, Dewi two; one of each reaches Grade A; Rina removes one lead.
    Budi came from an ad; Siti wrote through the WAHA number."""
    budi, b, c, siti, e = (chat_of(i) for i in range(5))
    cloud_message(client, budi.split("@")[0], "Budi Santoso", referral=samples.ad_referral(AD_ID))
    post_waha(client, samples.waha_message(siti, "Kak, ada warna lain?", name="Siti Rahma"))
    post_waha(client, samples.waha_label_upsert("1", "Lead"))
    post_waha(client, samples.waha_label_upsert("2", "Grade A"))
    drained()
    for chat in (budi, b, c):
        label_contact(client, chat, "1", "Lead", metadata={"staff": "Rina"})
    for chat in (siti, e):
        label_contact(client, chat, "1", "Lead", metadata={"staff": "Dewi"})
    drained()
    label_contact(client, budi, "2", "Grade A", metadata={"staff": "Rina"})
    label_contact(client, siti, "2", "Grade A", metadata={"staff": "Dewi"})
    post_waha(client, samples.waha_label_chat("deleted", b, "1", "Lead", metadata={"staff": "Rina"}))
    drained()


def bars(driver, chart: str) -> dict[str, str]:
    """What each bar of a chart says: its name and the figure written beside it."""
    from selenium.webdriver.common.by import By

    result = {}
    for bar in driver.find_elements(By.CSS_SELECTOR, f"#{chart} g.bar"):
        name = bar.find_element(By.CSS_SELECTOR, "text.name").text
        result[name] = bar.find_element(By.CSS_SELECTOR, "text.value").text
    return result


def visible_names(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, "#contacts tbody tr")
    return sorted(row.find_element(By.CSS_SELECTOR, "td").text for row in rows if row.is_displayed())


def test_dashboard_shows_labels_flows_staff_sources_and_a_searchable_list(server, browser, client, drained):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    seed(client, drained)
    browser.get(f"{server}/dashboard")
    token = browser.find_element(By.ID, "token")  # not signed in: the sign-in form
    token.send_keys("wrong token")
    token.submit()
    # The answer is a new page: wait for it (a sign-in is checked off the event loop, and the
    # old page's form is still there until the new one arrives).
    alert = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "[role=alert]"), 10, "the error")
    assert "not right" in alert[0].text
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    wait_for(lambda: browser.find_elements(By.ID, "chart-labels"), 10, "the dashboard after signing in")

    assert bars(browser, "chart-labels") == {"Lead": "4", "Grade A": "2"}
    flows = {
        block.get_attribute("data-name"): block.find_element(By.CSS_SELECTOR, ".totals").text
        for block in browser.find_elements(By.CSS_SELECTOR, "#chart-flow .flow-label")
    }
    assert flows == {"Lead": "5 entered · 1 left", "Grade A": "2 entered · 0 left"}
    assert bars(browser, "chart-staff") == {
        "Rina": "4 labels · 3 contacts · 33% reached Grade A",
        "Dewi": "3 labels · 2 contacts · 50% reached Grade A",
    }
    assert bars(browser, "chart-sources") == {
        "organic": "4 contacts · 1 Grade A",
        f"ad:{AD_ID}": "1 contact · 1 Grade A",
    }

    # The list opens on the target label; typing filters it at once.
    assert Select(browser.find_element(By.ID, "label-select")).first_selected_option.text == "Grade A"
    assert visible_names(browser) == ["Budi Santoso", "Siti Rahma"]
    browser.find_element(By.ID, "search").send_keys("siti")
    assert visible_names(browser) == ["Siti Rahma"]
    assert browser.find_element(By.ID, "shown").text == "1"

    # Another label: the page shows that label's contacts (the removed lead is not among them).
    browser.find_element(By.ID, "search").clear()
    Select(browser.find_element(By.ID, "label-select")).select_by_visible_text("Lead")
    wait_for(lambda: "label=Lead" in browser.current_url, 10, "the Lead list")
    assert visible_names(browser) == ["Budi Santoso", "Siti Rahma", "—", "—"]
    browser.find_element(By.ID, "search").send_keys("+6281255500")
    assert len(visible_names(browser)) == 4  # phones are searchable too

    browser.find_element(By.CSS_SELECTOR, "header form button").click()
    wait_for(lambda: browser.find_elements(By.ID, "token"), 10, "signed out")


def test_an_account_signs_in_sees_the_dashboard_and_signing_out_refuses_the_old_cookie(
    server, browser, client, admin_headers
):
    """Sign in with a login and password in the browser, at a phone's width (390 px): a wrong
    password says so, the right one opens the dashboard, signing out revokes the session (the
    old cookie, put back, is refused)."""
    from selenium.webdriver.common.by import By

    account = {"login": "sri", "role": "supervisor", "teams": ["sales"], "password": "kopi-tubruk-pagi"}
    assert client.post("/api/agents", json=account, headers=admin_headers).status_code == 201
    browser.set_window_size(390, 844)
    try:
        browser.delete_all_cookies()
        browser.get(f"{server}/dashboard")
        fits = "return document.documentElement.scrollWidth <= window.innerWidth"
        assert browser.execute_script(fits), "the sign-in form fits 390 px"
        browser.find_element(By.ID, "login").send_keys("sri")
        browser.find_element(By.ID, "password").send_keys("not-the-password")
        browser.find_element(By.CSS_SELECTOR, "form.login button").click()
        alert = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "[role=alert]"), 10, "the error")
        assert alert[0].text == "Wrong login or password."
        browser.find_element(By.ID, "login").send_keys("sri")
        browser.find_element(By.ID, "password").send_keys("kopi-tubruk-pagi")
        browser.find_element(By.CSS_SELECTOR, "form.login button").click()
        wait_for(lambda: browser.find_elements(By.ID, "chart-labels"), 10, "the dashboard after signing in")
        assert browser.find_element(By.ID, "who").text == "sri (supervisor)"
        assert browser.execute_script(fits), "the dashboard fits 390 px"
        cookie = browser.get_cookie("wacrm_session")
        assert cookie["httpOnly"] and cookie["path"] == "/" and cookie["sameSite"] == "Lax"

        browser.find_element(By.CSS_SELECTOR, "header form button").click()
        wait_for(lambda: browser.find_elements(By.ID, "password"), 10, "signed out")
        browser.add_cookie({"name": "wacrm_session", "value": cookie["value"], "path": "/"})
        browser.get(f"{server}/dashboard")
        assert browser.find_elements(By.ID, "password"), "the old cookie is refused: the sign-in form"
        assert not browser.find_elements(By.ID, "chart-labels")
    finally:
        browser.delete_all_cookies()
        browser.set_window_size(1200, 2400)


def test_dashboard_is_closed_without_the_token(make_client, drained):
    # Without ADMIN_TOKEN the accounts still sign in: the form, never the page.
    closed = make_client(admin_token=None).get("/dashboard")
    assert closed.status_code == 401 and 'name="password"' in closed.text
    client = make_client(admin_token=TOKEN)
    anonymous = client.get("/dashboard")
    assert anonymous.status_code == 401 and 'name="token"' in anonymous.text
    assert "script-src 'none'" in anonymous.headers["content-security-policy"]
    assert client.get("/dashboard/contacts.csv", params={"label": "Lead"}).status_code == 401
    signed_in = client.post("/dashboard/login", data={"token": TOKEN}, follow_redirects=False)
    assert signed_in.status_code == 303
    cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/;" in cookie and TOKEN not in cookie
    page = client.get("/dashboard")
    assert page.status_code == 200 and "No labels yet." in page.text
