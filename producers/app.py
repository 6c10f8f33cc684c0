"""The ASGI app (``uvicorn producers.app:app``): webhook producers, operations endpoints, and the
query API. OpenAPI schema at ``/openapi.json``, Swagger UI at ``/docs`` and ReDoc at ``/redoc``:
their JavaScript and CSS come from the fastapi-offline package and are served by the app, so the
pages work with no internet (FastAPI's own load them from a CDN)."""

from __future__ import annotations

import logging

from fastapi import Depends, FastAPI
from fastapi_offline import FastAPIOffline

import api.accounts
import api.automation
import api.broadcasts
import api.campaigns
import api.channels
import api.contact_labels
import api.contacts
import api.control
import api.crm
import api.dashboard
import api.events
import api.figures
import api.flows
import api.followup_effects
import api.inbox
import api.journey
import api.labels
import api.lead_model
import api.media
import api.notes
import api.orders
import api.permissions
import api.templates
import api.tracker
import web.app
from api.auth import check_admin_token
from observability.logs import configure_logging
from producers import flows, health, odoo, orders, waha, whatsapp
from producers.inbox import DATABASE_UNAVAILABLE, InboxUnavailable, unavailable_handler
from producers.rejections import Rejected, rejected_handler
from producers.security import BodyLimit
from settings import Settings, settings

# Request bodies of the API and the dashboard: a broadcast (label, text up to 4096 characters,
# template parameters) is the largest. Webhooks have their own limit, MAX_BODY_BYTES.
API_MAX_BODY_BYTES = 64 * 1024
# A multipart upload's boundaries and part headers, beyond the file itself.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
# Where the files of /docs and /redoc are served.
DOCS_ASSETS = "/static/docs"

log = logging.getLogger(__name__)


def create_app(config: Settings = settings) -> FastAPI:
    configure_logging(config.log_level)
    _log_unset_secrets(config)
    check_admin_token(config)
    application = FastAPIOffline(
        title="WhatsApp CRM automation",
        version="0.1.0",
        description="Webhook producers (WhatsApp Cloud API, WAHA, order system) and the query API.",
        static_url=DOCS_ASSETS,
        # No spec validation by swagger.io's online validator.
        swagger_ui_parameters={"validatorUrl": None},
        # Who may call what: one table for every route (api/permissions.py), closed by default.
        dependencies=[Depends(api.permissions.enforce)],
    )
    api.permissions.install(application)
    api.events.install(application)
    application.state.settings = config
    application.add_exception_handler(Rejected, rejected_handler)
    application.add_exception_handler(InboxUnavailable, unavailable_handler)
    for unavailable in DATABASE_UNAVAILABLE:  # the API, the dashboard: 503 too, not 500
        application.add_exception_handler(unavailable, unavailable_handler)
    application.add_middleware(
        BodyLimit,
        limit=min(API_MAX_BODY_BYTES, config.max_body_bytes),
        exempt=("/webhooks/", "/flows/"),
        # An upload's own cap (per kind) is applied as it is read; this bounds the request.
        larger={"/api/media": config.media_max_bytes + MULTIPART_OVERHEAD_BYTES},
    )
    application.include_router(whatsapp.router)
    application.include_router(orders.router)
    application.include_router(waha.router)
    application.include_router(flows.router)
    application.include_router(odoo.router)
    application.include_router(health.router)
    application.include_router(api.contacts.router)
    application.include_router(api.crm.router)
    application.include_router(api.orders.router)
    application.include_router(api.labels.router)
    application.include_router(api.contact_labels.router)
    application.include_router(api.broadcasts.router)
    application.include_router(api.control.router)
    application.include_router(api.automation.router)
    application.include_router(api.accounts.router)
    application.include_router(api.journey.router)
    application.include_router(api.figures.router)
    application.include_router(api.followup_effects.router)
    application.include_router(api.lead_model.router)
    application.include_router(api.campaigns.router)
    application.include_router(api.flows.router)
    application.include_router(api.media.router)
    application.include_router(api.media.public)
    application.include_router(api.templates.router)
    application.include_router(api.channels.router)
    application.include_router(api.inbox.router)
    application.include_router(api.events.router)
    application.include_router(api.tracker.router)
    application.include_router(api.dashboard.router)
    application.include_router(api.notes.router)
    web.app.install(application)  # the team inbox pages under /inbox
    return application


def _log_unset_secrets(config: Settings) -> None:
    """Say once, at start, which webhooks have no secret: open in development mode, else closed."""
    unset = ", ".join(name for name, value in config.webhook_secrets.items() if not value)
    if not unset:
        return
    if config.development_mode:
        log.warning(
            "DEVELOPMENT_MODE is on: the webhooks whose secret is unset (%s) take unsigned "
            "requests; never run like this where the internet can reach the API",
            unset,
        )
    else:
        log.info("the webhooks whose secret is unset (%s) answer 503 until it is set", unset)


app = create_app()
