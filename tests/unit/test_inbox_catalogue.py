"""Every label of the /inbox pages goes through the catalogue: a template's literal text or a
user-visible attribute with letters in it fails, and so does a message missing (or left
untranslated) in the Indonesian or English .po."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from jinja2 import Environment

from web.i18n import LANGUAGES, LOCALE_DIR
from web.render import TEMPLATES, environment

WEB = Path(__file__).resolve().parents[2] / "web"
SHOWN_ATTRIBUTES = {"title", "placeholder", "alt", "aria-label", "label"}
# Words that are the same in every language: product names and the units on the page.
SAME_EVERYWHERE = {"WhatsApp", "Odoo", "AI"}
LETTERS = re.compile(r"[A-Za-z]{2,}")


class _Texts(HTMLParser):
    """The text and the shown attributes of a template's literal HTML (Jinja code removed)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self.skip += 1
        self.found += [v for k, v in attrs if k in SHOWN_ATTRIBUTES and v]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skip -= 1

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.found.append(data)


def literal_texts(source: str) -> list[str]:
    """What a template shows that is not produced by Jinja: its data tokens, parsed as HTML."""
    data = "".join(value for _, kind, value in Environment().lex(source) if kind == "data")
    parser = _Texts()
    parser.feed(data)
    texts = [t.strip() for t in parser.found if LETTERS.search(t)]
    # A path is no label (a block filling a form's hidden "back" field).
    return [t for t in texts if t not in SAME_EVERYWHERE and not t.startswith("/")]


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.glob("*.html")))
def test_a_template_shows_no_untranslated_text(template):
    assert literal_texts((TEMPLATES / template).read_text()) == []


def test_the_check_catches_literal_text():
    assert literal_texts('<p title="Hello">Hi {{ _("x") }}</p>') == ["Hello", "Hi"]


def _msgids() -> set[str | tuple[str, str]]:
    """Every message the code and templates ask for: a text, or a (singular, plural) pair."""
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    found = extract_from_dir(
        str(WEB), method_map, keywords={"_": None, "gettext": (2,), "ngettext": (1, 2)}, options_map={}
    )
    return {message if isinstance(message, str) else tuple(message) for _, _, message, _, _ in found}


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_message_is_in_each_catalogue_and_translated(language):
    with (LOCALE_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as source:
        catalog = read_po(source, locale=language)
    # A plural message is translated when every plural form of the language has its text.
    translated = {
        m.id
        for m in catalog
        if m.id and not m.fuzzy and (all(m.string) if isinstance(m.string, tuple) else m.string)
    }
    translated = {tuple(i) if isinstance(i, list | tuple) else i for i in translated}
    missing = sorted(map(str, _msgids() - translated))
    assert not missing, f"run pybabel extract/update (docs/inbox.md) and translate: {missing}"


def test_a_plural_message_is_written_in_the_readers_plural_form():
    english, indonesian = environment("en"), environment("id")
    source = '{{ ngettext("%(num)s contact", "%(num)s contacts", n) }}'
    assert [english.from_string(source).render(n=n) for n in (1, 2)] == ["1 contact", "2 contacts"]
    assert [indonesian.from_string(source).render(n=n) for n in (1, 2)] == ["1 kontak", "2 kontak"]


def test_the_pages_render_in_both_languages():
    for language in LANGUAGES:
        html = environment(language).get_template("login.html").render(next="/inbox", failed=True)
        assert ("Masuk" if language == "id" else "Sign in") in html
