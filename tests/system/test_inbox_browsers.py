"""The inbox in real browsers (headless Chromium, Selenium) against the app under uvicorn, on
the real stack (webhook, Celery workers, Redis, PostgreSQL, the fake Cloud API over HTTP):
the labels page at a desktop's and a phone's width, two agents seeing each other's reply and its
read tick arrive live, an image sent from the page, and both languages without an untranslated
label."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from sqlalchemy import select

from models import Conversation, Message
from models.db import session_scope
from testkit import samples
from testkit.processes import wait_for
from testkit.waha import chat_of, label_contact, post_waha
from tests.system.test_dashboard import browser, chromium, server  # noqa: F401 (the fixtures)
from tests.system.test_inbox import (
    HOT_TEXT,
    PASSWORD,
    SCREENSHOTS,
    SITI,
    account,
    conversation_of,
    signed_in,
    steady,
    write,
)
from tests.system.test_routing import settled
from web.i18n import LOCALE_DIR

pytestmark = pytest.mark.usefixtures("worker")

SCRIPT_NAME = "<script>alert(1)</script> Rina"
FITS = "return document.documentElement.scrollWidth <= window.innerWidth"
# Every text the person reads: text nodes (not of scripts) and the shown attributes.
VISIBLE_TEXTS = """
var out = [], walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
while (walker.nextNode()) {
  var node = walker.currentNode, parent = node.parentElement, text = node.textContent.trim();
  if (text && parent && !parent.closest("script, style")) out.push(text);
}
document.querySelectorAll("[placeholder], [title], [aria-label]").forEach(function (el) {
  ["placeholder", "title", "aria-label"].forEach(function (name) {
    var value = el.getAttribute(name);
    if (value && value.trim()) out.push(value.trim());
  });
});
return out;
"""


def sign_in(driver, url: str, login: str, path: str) -> None:
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(f"{url}{path}")
    wait_for(lambda: driver.find_elements(By.ID, "password"), 10, "the sign-in page")
    driver.find_element(By.ID, "login").send_keys(login)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form.login button").click()
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "header.top"), 15, f"{path} after signing in")


def choose_language(driver, language: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, "language")).select_by_value(language)
    driver.find_element(By.CSS_SELECTOR, "form[action='/inbox/language'] button").click()
    wait_for(
        # The old page's <html> goes stale while the new page loads: look again.
        lambda: steady(lambda: driver.find_element(By.TAG_NAME, "html").get_attribute("lang")) == language,
        10,
        f"the page in {language}",
    )


def test_the_labels_page_fits_a_desktop_and_a_phone_and_shows_a_script_name_as_text(
    server,  # noqa: F811
    browser,  # noqa: F811
    client,
    admin_headers,
    drained,
):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    account(client, admin_headers, "sri", role="supervisor")
    chat = chat_of(7)
    post_waha(client, samples.waha_message(chat, "Kak, ada ukuran L?", name=SCRIPT_NAME))
    post_waha(client, samples.waha_label_upsert("2", "Grade A"))
    drained()
    label_contact(client, chat, "2", "Grade A", metadata={"staff": "Dewi"})
    drained()

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    sign_in(browser, server, "sri", "/inbox/labels")
    try:
        for width, height in ((1200, 2400), (390, 844)):
            browser.set_window_size(width, height)
            browser.get(f"{server}/inbox/labels")
            names = wait_for(
                lambda: browser.find_elements(By.CSS_SELECTOR, "#members tbody td"), 15, "the list"
            )
            assert names[0].text == SCRIPT_NAME  # the customer's name as text
            assert not browser.find_elements(By.CSS_SELECTOR, "#members script")
            with pytest.raises(NoAlertPresentException):
                browser.switch_to.alert.text  # noqa: B018 (nothing ran)
            assert browser.execute_script(FITS), f"the labels page scrolls sideways at {width} px"
            browser.save_screenshot(str(SCREENSHOTS / f"inbox-labels-{width}.png"))
    finally:
        browser.set_window_size(1200, 2400)
        browser.delete_all_cookies()


def test_a_reply_and_its_read_tick_reach_another_agents_page_live(
    server,  # noqa: F811
    browser,  # noqa: F811
    client,
    admin_headers,
    cloud_api,
):
    from selenium.webdriver.common.by import By

    account(client, admin_headers, "ayu")
    account(client, admin_headers, "bayu")
    write(client, SITI, HOT_TEXT)
    settled()
    path = f"/inbox/conversations/{conversation_of(SITI)}"
    other = chromium()
    try:
        sign_in(browser, server, "ayu", path)
        sign_in(other, server, "bayu", path)
        state = other.find_element(By.ID, "live-state")
        # The stream is open: what follows arrives by it, not by the page's polling.
        wait_for(lambda: state.text == state.get_attribute("data-live"), 15, "the live stream open")

        reply = "Ada kak, ukuran L tinggal dua"
        browser.find_element(By.ID, "reply-text").send_keys(reply)
        browser.find_element(By.ID, "send").click()
        wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#flash.ok"), 15, "sent")

        def shown_reply():
            for item in other.find_elements(By.CSS_SELECTOR, ".messages .message.outbound"):
                if reply in item.text:
                    return item.get_attribute("id")
            return None

        item_id = wait_for(lambda: steady(shown_reply), 60, "the reply on the other agent's page")

        def sent_wamid() -> str | None:
            with session_scope() as session:
                return session.scalar(
                    select(Message.external_id).where(Message.text == reply, Message.external_id.is_not(None))
                )

        wamid = wait_for(sent_wamid, 60, "the reply accepted by the Cloud API")
        assert any(b.get("text", {}).get("body") == reply for _, b in cloud_api.sent_bodies)
        body, headers = samples.encode(samples.envelope(statuses=[samples.status(wamid, "read", SITI)]))
        assert client.post("/webhooks/whatsapp", content=body, headers=headers).status_code == 200
        wait_for(
            lambda: steady(lambda: other.find_elements(By.CSS_SELECTOR, f"#{item_id} .status.read")),
            60,
            "the read tick on the other agent's page",
        )
        assert other.find_element(By.ID, "live-state").text == state.get_attribute("data-live")
    finally:
        other.quit()
        browser.delete_all_cookies()


def test_a_label_given_on_whatsapp_or_through_the_api_appears_on_an_open_page_live(
    server,  # noqa: F811
    browser,  # noqa: F811
    client,
    admin_headers,
    drained,
):
    from selenium.webdriver.common.by import By

    account(client, admin_headers, "sri", role="supervisor")
    chat = chat_of(8)
    post_waha(client, samples.waha_message(chat, "Kak, masih ada stok?", name="Wulan"))
    drained()
    conversation = conversation_of(chat)
    with session_scope() as session:
        contact = session.get_one(Conversation, conversation).contact_id
    queue = chromium()  # a second browser, on the queue
    sign_in(browser, server, "sri", f"/inbox/conversations/{conversation}")
    sign_in(queue, server, "sri", "/inbox")
    try:
        for driver in (browser, queue):
            state = driver.find_element(By.ID, "live-state")
            wait_for(lambda s=state: s.text == s.get_attribute("data-live"), 15, "the live stream open")

        def labels() -> list[str]:
            return steady(lambda: [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#labels .label")])

        def chips() -> list[str]:
            row = f".queue li[data-conversation='{conversation}'] .label"
            return steady(lambda: [e.text for e in queue.find_elements(By.CSS_SELECTOR, row)])

        marker = browser.find_element(By.ID, "thread-title")  # the page is not reloaded
        label_contact(client, chat, "5", "VIP", metadata={"staff": "Dewi"})  # set in the phone's app
        wait_for(lambda: labels() == ["VIP"], 60, "the WhatsApp label on the open page")
        wait_for(lambda: chips() == ["VIP"], 60, "the label's chip on the queue of another browser")
        answer = client.post(f"/api/contacts/{contact}/labels/Grosir", headers=admin_headers)
        assert answer.status_code == 201, answer.text
        wait_for(lambda: sorted(labels()) == ["Grosir", "VIP"], 60, "the API's label on the open page")
        answer = client.delete(f"/api/contacts/{contact}/labels/VIP", headers=admin_headers)
        assert answer.status_code == 200, answer.text
        wait_for(lambda: labels() == ["Grosir"], 60, "the removed label gone from the open page")
        assert marker.is_displayed()  # the same element: no reload happened
        wait_for(lambda: chips() == ["Grosir"], 60, "the queue's chips after the removal")
    finally:
        queue.quit()
        browser.delete_all_cookies()


def png(width: int = 2, height: int = 2) -> bytes:
    """A real, tiny PNG (grey pixels), as a phone's photo would be checked."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80\x80\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def test_an_image_sent_from_the_page_reaches_the_cloud_api(
    server,  # noqa: F811
    browser,  # noqa: F811
    client,
    admin_headers,
    cloud_api,
    tmp_path: Path,
):
    from selenium.webdriver.common.by import By

    account(client, admin_headers, "ayu")
    write(client, SITI, HOT_TEXT)
    settled()
    photo = tmp_path / "ukuran-L.png"
    photo.write_bytes(png())
    sign_in(browser, server, "ayu", f"/inbox/conversations/{conversation_of(SITI)}")
    try:
        browser.find_element(By.ID, "attach-file").send_keys(str(photo))
        browser.find_element(By.ID, "attach-caption").send_keys("Ini ukuran L kak")
        browser.find_element(By.ID, "attach-send").click()
        flash = wait_for(lambda: browser.find_elements(By.ID, "flash"), 15, "the page's answer")
        assert "ok" in flash[0].get_attribute("class").split(), flash[0].text

        def image_sent():
            return [b for _, b in cloud_api.sent_bodies if b.get("type") == "image"]

        [sent] = wait_for(image_sent, 60, "the image at the Cloud API")
        [(_, uploaded)] = cloud_api.uploads  # uploaded to the Cloud API first, then sent by its id
        assert sent["image"] == {"id": uploaded, "caption": "Ini ukuran L kak"}
        assert sent["to"] == SITI
    finally:
        browser.delete_all_cookies()


def _catalogue(language: str):
    with (LOCALE_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as source:
        return read_po(source, locale=language)


def _plain(language: str) -> dict[str, str]:
    """msgid → text of the catalogue's messages without placeholders (those are shown as is)."""
    return {
        m.id: m.string
        for m in _catalogue(language)
        if isinstance(m.id, str) and m.id and m.string and "%(" not in m.id
    }


def _fixed_words(language: str) -> set[str]:
    """The fixed words of the messages with values (routing reasons: "needs a reply: %(why)s"),
    two words or more, as a page in that language shows them around the values."""
    words = set()
    for m in _catalogue(language):
        if isinstance(m.id, str) and "%(" in m.id and isinstance(m.string, str):
            for part in re.split(r"%\(\w+\)s", m.string):
                part = part.strip(" :;,()%/+-")
                if len(part.split()) >= 2:
                    words.add(part)
    return words


def test_every_page_in_indonesian_and_english_shows_no_label_of_the_other_language(
    server,  # noqa: F811
    browser,  # noqa: F811
    client,
    admin_headers,
):
    from selenium.webdriver.common.by import By

    indonesian, english = _plain("id"), _plain("en")
    english_texts, indonesian_texts = set(english.values()), set(indonesian.values())
    # A label of one language that is not also a label of the other ("Label" is both).
    only_english = {
        text for msgid, text in english.items() if indonesian.get(msgid) != text
    } - indonesian_texts
    only_indonesian = {
        text for msgid, text in indonesian.items() if english.get(msgid) != text
    } - english_texts
    assert "Sign in" in only_english and "Masuk" in only_indonesian  # the check has teeth
    # The routing reasons are sentences with values: their fixed words must not be the other
    # language's either ("needs a reply: a question" on the Indonesian page).
    words = {"id": _fixed_words("id"), "en": _fixed_words("en")}
    foreign_words = {"id": words["en"] - words["id"], "en": words["id"] - words["en"]}
    assert "needs a reply" in foreign_words["id"] and "perlu dibalas" in foreign_words["en"]

    account(client, admin_headers, "sri", role="supervisor")
    write(client, SITI, HOT_TEXT)
    settled()
    pages = {
        "queue": "/inbox",
        "conversation": f"/inbox/conversations/{conversation_of(SITI)}",
        "figures": "/inbox/figures",
        "labels": "/inbox/labels",
    }
    sign_in(browser, server, "sri", "/inbox")
    try:
        for language, foreign in (("id", only_english), ("en", only_indonesian)):
            choose_language(browser, language)
            for name, path in pages.items():
                browser.get(f"{server}{path}")
                wait_for(lambda: browser.find_elements(By.ID, "main"), 15, path)
                shown = set(browser.execute_script(VISIBLE_TEXTS))
                assert not shown & foreign, f"{path} in {language} shows {sorted(shown & foreign)}"
                mixed = sorted(w for w in foreign_words[language] if any(w in text for text in shown))
                assert not mixed, f"{path} in {language} shows the other language's {mixed}"
                if name == "conversation":  # the lead's and the decisions' reasons are there
                    reasons = browser.find_elements(By.CSS_SELECTOR, ".reasons li, .decisions li li")
                    texts = [r.get_attribute("textContent") for r in reasons]
                    asks = "menanyakan harga" if language == "id" else "asks about price"
                    assert any(asks in text for text in texts), texts
                browser.save_screenshot(str(SCREENSHOTS / f"inbox-{name}-{language}.png"))
    finally:
        browser.delete_all_cookies()


def test_a_file_form_sent_without_javascript_carries_its_csrf_token_in_the_form(
    client, admin_headers, make_client, cloud_api
):
    """Without htmx there is no X-CSRF-Token header: the multipart form's own field is checked."""
    account(client, admin_headers, "ayu")
    write(client, SITI, HOT_TEXT)
    settled()
    ayu, csrf = signed_in(make_client, "ayu")
    conversation = conversation_of(SITI)
    page = ayu.get(f"/inbox/conversations/{conversation}").text
    form = {
        name: re.search(rf'name="{name}" value="([^"]*)"', page).group(1)
        for name in ("idempotency_key", "outbox_seen", "owner_seen")
    }
    url, files = f"/inbox/conversations/{conversation}/attachment", {"file": ("foto.png", png(), "image/png")}
    assert ayu.post(url, data={**form, "csrf": "wrong"}, files=files).status_code == 403
    sent = ayu.post(url, data={**form, "csrf": csrf}, files=files)
    assert sent.status_code == 200 and 'class="flash ok"' in sent.text, sent.text[-2000:]
    wait_for(lambda: [b for _, b in cloud_api.sent_bodies if b.get("type") == "image"], 60, "the image sent")
