"""The ASGI app (``uvicorn producers.app:app``): webhook producers, operations endpoints, and the
query API. OpenAPI schema at ``/openapi.json``, Swagger UI at ``/docs``: its JavaScript and CSS
are served from the swagger-ui-bundle package, so the page works with no internet (no CDN)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

import api.automation
import api.broadcasts
import api.contacts
import api.control
import api.dashboard
import api.journey
import api.labels
import api.orders
from observability.logs import configure_logging
from producers import health, orders, waha, whatsapp
from producers.inbox import InboxUnavailable, unavailable_handler
from producers.rejections import Rejected, rejected_handler
from producers.security import BodyLimit
from settings import Settings, settings

# Request bodies of the API and the dashboard: a broadcast (label, text up to 4096 characters,
# template parameters) is the largest. Webhooks have their own limit, MAX_BODY_BYTES.
API_MAX_BODY_BYTES = 64 * 1024
# Where the Swagger UI files of the swagger-ui-bundle package are served.
SWAGGER_ASSETS = "/static/swagger-ui"


def create_app(config: Settings = settings) -> FastAPI:
    configure_logging(config.log_level)
    application = FastAPI(
        title="WhatsApp CRM automation",
        version="0.1.0",
        description="Webhook producers (WhatsApp Cloud API, WAHA, order system) and the query API.",
        # FastAPI's own /docs and /redoc load their files from a CDN: /docs is served below from
        # local files instead, and ReDoc (which no package ships) is off.
        docs_url=None,
        redoc_url=None,
    )
    application.state.settings = config
    application.add_exception_handler(Rejected, rejected_handler)
    application.add_exception_handler(InboxUnavailable, unavailable_handler)
    application.add_middleware(
        BodyLimit, limit=min(API_MAX_BODY_BYTES, config.max_body_bytes), exempt=("/webhooks/",)
    )
    application.include_router(whatsapp.router)
    application.include_router(orders.router)
    application.include_router(waha.router)
    application.include_router(health.router)
    application.include_router(api.contacts.router)
    application.include_router(api.orders.router)
    application.include_router(api.labels.router)
    application.include_router(api.broadcasts.router)
    application.include_router(api.control.router)
    application.include_router(api.automation.router)
    application.include_router(api.journey.router)
    application.include_router(api.dashboard.router)
    _add_docs(application)
    return application


def _add_docs(application: FastAPI) -> None:
    application.mount(SWAGGER_ASSETS, StaticFiles(directory=swagger_ui_path), name="swagger-ui")

    @application.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=application.openapi_url,
            title=f"{application.title} - API docs",
            swagger_js_url=f"{SWAGGER_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_ASSETS}/favicon-32x32.png",
            # No spec validation by swagger.io's online validator.
            swagger_ui_parameters={"validatorUrl": None},
        )


app = create_app()
