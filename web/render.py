"""Rendering a page: one Jinja2 environment per language (autoescape on everywhere, the
catalogue's gettext installed), and the headers every page carries."""

from __future__ import annotations

import json
import uuid
from functools import cache
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from web import reasons
from web.i18n import LANGUAGES, Formats, translations

TEMPLATES = Path(__file__).parent / "templates"
STATIC_URL = "/inbox/static"
# htmx swaps error answers too (they carry the message to show), keeps no history cache with
# customer data in localStorage, and adds no inline style of its own.
HTMX_CONFIG = json.dumps(
    {
        "responseHandling": [
            {"code": "204", "swap": False},
            {"code": "[2345]..", "swap": True, "error": False},
        ],
        "historyCacheSize": 0,
        "includeIndicatorStyles": False,
        "allowEval": False,
    }
)
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@cache
def environment(language: str) -> Environment:
    assert language in LANGUAGES
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    # A stored routing reason, and who answers, in the page's language (web/reasons.py).
    plain = translations(language).gettext
    env.filters["reason"] = lambda text: reasons.translate(str(text), plain, language)
    env.filters["responder"] = lambda name: reasons.responder(str(name), plain)
    env.globals.update(
        static=STATIC_URL,
        htmx_config=HTMX_CONFIG,
        lang=language,
        fmt=Formats(language),
        # A reply form's Idempotency-Key, made when the form is drawn: sending it twice sends once.
        new_key=lambda: uuid.uuid4().hex,
    )
    return env


def page(template: str, language: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = environment(language).get_template(template).render(**context)
    return HTMLResponse(
        html,
        status_code=status,
        headers={
            "Content-Security-Policy": CSP,
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        },
    )


def gettext(language: str, message: str, **values: Any) -> str:
    """A message of the Python code (flash messages), from the same catalogue."""
    text = translations(language).gettext(message)
    return text % values if values else text
