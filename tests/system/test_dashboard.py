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
NONE = "\u2013"  # what the list writes for a contact without a name


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The real ASGI app under uvicorn, on the tests' database and broker, with ADMIN_TOKEN set."""
    with api_server("dashboard", {"ADMIN_TOKEN": TOKEN}) as url:
        yield url


def chromium(width: int = 1200, height: int = 2400):
    """A new headless Chromium driven by Selenium (a test may open a second one)."""
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
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(0)
    return driver


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
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
    for bar in driver.find_elements(By.CSS_SELECTOR, f"#{chart} .bars li"):
        name = bar.find_element(By.CSS_SELECTOR, ".who").text
        result[name] = bar.find_element(By.CSS_SELECTOR, ".value").text
    return result


def listed_names(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, "#members tbody tr")
    return sorted(row.find_element(By.CSS_SELECTOR, "td").text for row in rows)


def show(driver, label: str | None = None, search: str | None = None) -> None:
    """Choose a label and/or type a search in the contact list's form, then press Show."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    if label is not None:
        Select(driver.find_element(By.ID, "label-select")).select_by_visible_text(label)
    if search is not None:
        box = driver.find_element(By.ID, "search")
        box.clear()
        box.send_keys(search)
    old = driver.find_element(By.ID, "members")
    driver.find_element(By.CSS_SELECTOR, "#contacts form button").click()
    wait_for(lambda: not _attached(old), 10, "the contact list again")


def _attached(element) -> bool:
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        element.is_displayed()
        return True
    except StaleElementReferenceException:
        return False


def sign_out(driver) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, "form[action='/dashboard/logout'] button").click()


def test_the_old_dashboard_address_opens_the_labels_page_with_charts_headlines_and_the_list(
    server, browser, client, drained
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    seed(client, drained)
    browser.delete_all_cookies()
    browser.get(f"{server}/dashboard")  # an old bookmark: the labels page, after signing in
    token = wait_for(lambda: browser.find_elements(By.ID, "token"), 10, "the sign-in page")[0]
    token.send_keys("wrong token")
    token.submit()
    alert = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "[role=alert]"), 10, "the error")
    assert alert[0].text == "Login atau kata sandi salah."  # the inbox's page, Indonesian by default
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    wait_for(lambda: browser.find_elements(By.ID, "chart-labels"), 10, "the labels page after signing in")
    assert browser.current_url.startswith(f"{server}/inbox/labels")
    assert bars(browser, "chart-labels") == {"Lead": "4 kontak", "Grade A": "2 kontak"}
    # English, chosen in the header: the plural forms of English.
    Select(browser.find_element(By.ID, "language")).select_by_value("en")
    browser.find_element(By.CSS_SELECTOR, "form[action='/inbox/language'] button").click()
    wait_for(lambda: "Labels ·" in browser.title, 10, "the page in English")

    assert bars(browser, "chart-labels") == {"Lead": "4 contacts", "Grade A": "2 contacts"}
    flows = {
        block.get_attribute("data-name"): block.find_element(By.CSS_SELECTOR, ".totals").text
        for block in browser.find_elements(By.CSS_SELECTOR, "#chart-flow .flow-label")
    }
    assert flows == {"Lead": "5 entered · 1 left", "Grade A": "2 entered · 0 left"}
    assert browser.find_elements(By.CSS_SELECTOR, "#chart-flow svg.flow rect.in")  # drawn, no script
    assert bars(browser, "chart-staff") == {
        "Rina": "4 labels · 3 contacts · 33% reached Grade A",
        "Dewi": "3 labels · 2 contacts · 50% reached Grade A",
    }
    # The ad is named by its headline, not its id.
    assert bars(browser, "chart-sources") == {
        "Organic (no ad)": "4 contacts · 1 with Grade A",
        "Promo akhir tahun": "1 contact · 1 with Grade A",
    }
    assert AD_ID not in browser.find_element(By.ID, "main").text

    # The 7, 30 and 90 day charts are links of the page.
    browser.find_element(By.LINK_TEXT, "90 days").click()
    wait_for(lambda: "days=90" in browser.current_url, 10, "the 90-day chart")
    heading = browser.find_element(By.CSS_SELECTOR, "#chart-flow h2").text
    assert heading == "Entered and left, last 90 days"
    lead_days = browser.find_elements(By.CSS_SELECTOR, "#chart-flow .flow-label[data-name='Lead'] g.day")
    assert len(lead_days) == 90

    # The list opens on the target label, times with their zone; the search narrows it.
    assert Select(browser.find_element(By.ID, "label-select")).first_selected_option.text == "Grade A"
    assert listed_names(browser) == ["Budi Santoso", "Siti Rahma"]
    labelled = browser.find_element(By.CSS_SELECTOR, "#members tbody td:nth-child(4)").text
    assert labelled.endswith("+0700"), labelled  # TIMEZONE Asia/Jakarta, written out
    show(browser, search="siti")
    assert listed_names(browser) == ["Siti Rahma"]
    assert browser.find_element(By.ID, "shown").text == "1 contact with Grade A"

    # Another label: the page shows that label's contacts (the removed lead is not among them).
    show(browser, label="Lead", search="")
    assert listed_names(browser) == ["Budi Santoso", "Siti Rahma", NONE, NONE]
    show(browser, search="+6281255500")
    assert len(listed_names(browser)) == 4  # phones are searchable too
    export = browser.find_element(By.ID, "export").get_attribute("href")
    assert export.endswith("/dashboard/contacts.csv?label=Lead")

    sign_out(browser)
    wait_for(lambda: browser.find_elements(By.ID, "token"), 10, "signed out")


def test_an_account_signs_in_sees_the_labels_page_and_signing_out_refuses_the_old_cookie(
    server, browser, client, admin_headers
):
    """Sign in with a login and password in the browser, at a phone's width (390 px): a wrong
    password says so, the right one opens the labels page, signing out revokes the session (the
    old cookie, put back, is refused)."""
    from selenium.webdriver.common.by import By

    account = {"login": "sri", "role": "supervisor", "teams": ["sales"], "password": "kopi-tubruk-pagi"}
    assert client.post("/api/agents", json=account, headers=admin_headers).status_code == 201
    browser.set_window_size(390, 844)
    try:
        browser.delete_all_cookies()
        browser.get(f"{server}/inbox/labels")
        wait_for(lambda: browser.find_elements(By.ID, "login"), 10, "the sign-in page")
        fits = "return document.documentElement.scrollWidth <= window.innerWidth"
        assert browser.execute_script(fits), "the sign-in form fits 390 px"
        browser.find_element(By.ID, "login").send_keys("sri")
        browser.find_element(By.ID, "password").send_keys("not-the-password")
        browser.find_element(By.CSS_SELECTOR, "form.login button").click()
        alert = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "[role=alert]"), 10, "the error")
        assert alert[0].text == "Login atau kata sandi salah."
        browser.find_element(By.ID, "login").send_keys("sri")
        browser.find_element(By.ID, "password").send_keys("kopi-tubruk-pagi")
        browser.find_element(By.CSS_SELECTOR, "form.login button").click()
        wait_for(lambda: browser.find_elements(By.ID, "chart-labels"), 10, "the labels page after signing in")
        assert browser.find_element(By.ID, "who").text == "sri (supervisor)"
        assert browser.execute_script(fits), "the labels page fits 390 px"
        cookie = browser.get_cookie("wacrm_session")
        assert cookie["httpOnly"] and cookie["path"] == "/" and cookie["sameSite"] == "Lax"

        sign_out(browser)
        wait_for(lambda: browser.find_elements(By.ID, "password"), 10, "signed out")
        browser.add_cookie({"name": "wacrm_session", "value": cookie["value"], "path": "/"})
        browser.get(f"{server}/inbox/labels")
        assert browser.find_elements(By.ID, "password"), "the old cookie is refused: the sign-in form"
        assert not browser.find_elements(By.ID, "chart-labels")
    finally:
        browser.delete_all_cookies()
        browser.set_window_size(1200, 2400)


def test_the_labels_page_is_closed_without_a_session_and_refuses_another_period(make_client, drained):
    # Without ADMIN_TOKEN the accounts still sign in: the form, never the page.
    closed = make_client(admin_token=None)
    moved = closed.get("/dashboard", params={"label": "Lead"}, follow_redirects=False)
    assert moved.status_code == 303 and moved.headers["location"] == "/inbox/labels?label=Lead"
    anonymous = closed.get("/inbox/labels", follow_redirects=False)
    assert (
        anonymous.status_code == 303
        and anonymous.headers["location"] == "/inbox/login?next=%2Finbox%2Flabels"
    )
    client = make_client(admin_token=TOKEN)
    csv = client.get("/dashboard/contacts.csv", params={"label": "Lead"})
    assert csv.status_code == 401 and 'name="token"' in csv.text
    assert "script-src 'none'" in csv.headers["content-security-policy"]
    signed_in = client.post("/dashboard/login", data={"token": TOKEN}, follow_redirects=False)
    assert signed_in.status_code == 303
    cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/;" in cookie and TOKEN not in cookie
    page = client.get("/dashboard")  # followed: the labels page
    assert page.status_code == 200 and "Belum ada label." in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for days in ("14", "0", "ninety", "9" * 40):
        wrong = client.get("/inbox/labels", params={"days": days})
        assert wrong.status_code == 422 and 'id="period-error"' in wrong.text, days
        assert "7, 30 atau 90 hari" in wrong.text


def test_the_contact_list_is_paged_with_more_and_the_total_counts_every_page(make_client, drained):
    import re

    client = make_client(admin_token=TOKEN)
    assert client.post("/dashboard/login", data={"token": TOKEN}, follow_redirects=False).status_code == 303
    seed(client, drained)  # Lead: four contacts now (one was taken away)

    def listed(page) -> list[str]:
        return re.findall(r'class="contact-row" data-id="(\d+)"', page.text)

    def shown(page) -> str:
        return re.search(r'<p id="shown">([^<]*)</p>', page.text).group(1)

    first = client.get("/inbox/labels", params={"label": "Lead", "size": 3})
    assert first.status_code == 200
    assert shown(first) == "4 kontak dengan Lead" and len(listed(first)) == 3
    more = re.search(r'<a id="more" class="more" href="([^"]+)"', first.text)
    assert more is not None and 'id="first-page"' not in first.text
    second = client.get(more.group(1).replace("&amp;", "&").split("#")[0])
    assert shown(second) == "4 kontak dengan Lead"  # the total, not the page's
    assert len(listed(second)) == 1 and not set(listed(second)) & set(listed(first))
    assert 'id="more"' not in second.text and 'id="first-page"' in second.text
    # The whole list on one page: no More, no page note.
    whole = client.get("/inbox/labels", params={"label": "Lead"})
    assert len(listed(whole)) == 4 and 'id="more"' not in whole.text and 'id="page-note"' not in whole.text
