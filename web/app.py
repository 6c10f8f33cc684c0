"""Mounting the team inbox into the app (called by ``producers/app.py``)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from web import actions, figures, labels, pages
from web.render import STATIC_URL

STATIC = Path(__file__).parent / "static"


def install(application: FastAPI) -> None:
    # Our own scripts, styles and the vendored htmx: served by the app, never from a CDN.
    application.mount(STATIC_URL, StaticFiles(directory=STATIC), name="inbox-static")
    application.include_router(figures.router)
    application.include_router(labels.router)
    application.include_router(pages.router)
    application.include_router(actions.router)
