"""Who may call what: one table, applied to every route by one app-level dependency.

``RULES`` maps each route (method, path template) to the roles allowed. A route without a rule
answers 403 (closed by default); ``tests/unit/test_permissions.py`` walks the app's routes and
fails on one without a rule. Beyond the role, a conversation or contact outside the caller's
teams answers 404 (``contact_in_reach``, ``conversation_in_reach``): the teams come from
``pipeline.teams``, the one place that says which team a conversation belongs to.

The table in words (docs/accounts.md has it as a table):

- **anyone**: the webhooks and the Flows data endpoint (they check their own signatures), health
  and metrics, signing in, a tracked link's redirect ``/r/{code}``, the order tracker page (its
  signed token is the credential), a file of ours by its signed, expiring link ``/f/{id}``.
- **agent**: the contacts and conversations of their teams: read them (and their media files),
  answer, upload a file to send, pause automation for a contact, add and remove a contact's
  labels, read the FAQ and the templates; change their own availability; their own API tokens.
- **supervisor**: all of that, plus assign and reassign conversations, override routing
  decisions, read the human queue's figures, the label, journey, team and campaign figures, the
  agents list, the label dashboard; the learned lead score's figures, its refit and rollback.
- **admin**: everything, and alone: channels, agents (create, change, delete), FAQ, follow-up
  rules, broadcasts, the audit log, the contact export, syncing templates, the Flows served,
  tracked links, the Conversions API outbox.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api import dashboard
from api.auth import SESSION_COOKIE, Principal, admin_token_state, resolve
from models.routing import ADMIN, AGENT, SUPERVISOR
from pipeline.teams import contact_teams, conversation_team

ANYONE = "anyone"  # no credential needed (the route checks its own, e.g. a webhook signature)
EVERYONE = frozenset({ADMIN, SUPERVISOR, AGENT})
SUPERVISORS = frozenset({ADMIN, SUPERVISOR})
ADMINS = frozenset({ADMIN})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"


@dataclass(frozen=True)
class Rule:
    roles: frozenset[str] | str
    page: bool = False  # a dashboard page: anonymous gets the sign-in form, not JSON


OPEN = Rule(ANYONE)
ALL_ROLES, SUPERVISOR_UP, ADMIN_ONLY = Rule(EVERYONE), Rule(SUPERVISORS), Rule(ADMINS)

RULES: dict[tuple[str, str], Rule] = {
    # Webhooks, health: open (each webhook verifies its sender's signature).
    ("GET", "/webhooks/whatsapp"): OPEN,
    ("POST", "/webhooks/whatsapp"): OPEN,
    ("POST", "/webhooks/waha"): OPEN,
    ("POST", "/webhooks/orders"): OPEN,
    ("POST", "/webhooks/odoo/{secret}"): OPEN,  # the secret in the path is its credential
    ("GET", "/healthz"): OPEN,
    ("GET", "/readyz"): OPEN,
    ("GET", "/metrics"): OPEN,
    # The API's documentation (the schema lists no data).
    ("GET", "/openapi.json"): OPEN,
    ("GET", "/docs"): OPEN,
    ("GET", "/docs/oauth2-redirect"): OPEN,
    ("GET", "/redoc"): OPEN,
    # Signing in and out.
    ("POST", "/api/auth/token"): OPEN,
    ("POST", "/dashboard/login"): OPEN,
    ("POST", "/dashboard/logout"): OPEN,
    ("GET", "/api/tokens"): ALL_ROLES,
    ("POST", "/api/tokens"): ALL_ROLES,
    ("DELETE", "/api/tokens/{token_id}"): ALL_ROLES,
    # Contacts and conversations: of the caller's teams (404 outside them).
    ("GET", "/api/contacts"): ALL_ROLES,
    ("GET", "/api/contacts/{contact_id}"): ALL_ROLES,
    ("GET", "/api/contacts/{contact_id}/messages"): ALL_ROLES,
    ("GET", "/api/contacts/{contact_id}/routing"): ALL_ROLES,
    ("POST", "/api/contacts/{contact_id}/automation"): ALL_ROLES,
    ("POST", "/api/contacts/{contact_id}/labels/{name}"): ALL_ROLES,
    ("DELETE", "/api/contacts/{contact_id}/labels/{name}"): ALL_ROLES,
    ("GET", "/api/contacts/{contact_id}/followup-rules"): ALL_ROLES,
    ("PUT", "/api/contacts/{contact_id}/followup-rules"): ADMIN_ONLY,
    ("DELETE", "/api/contacts/{contact_id}/followup-rules"): ADMIN_ONLY,
    ("POST", "/api/conversations/{conversation_id}/messages"): ALL_ROLES,
    ("POST", "/api/conversations/{conversation_id}/assignee"): SUPERVISOR_UP,
    ("POST", "/api/conversations/{conversation_id}/close"): ALL_ROLES,
    ("POST", "/api/conversations/{conversation_id}/reopen"): ALL_ROLES,
    ("GET", "/api/conversations/{conversation_id}/notes"): ALL_ROLES,
    ("POST", "/api/conversations/{conversation_id}/notes"): ALL_ROLES,
    ("POST", "/api/routing-decisions/{decision_id}/override"): SUPERVISOR_UP,
    ("GET", "/api/queue"): ALL_ROLES,
    ("GET", "/api/orders/{order_id}"): ALL_ROLES,
    # The CRM as the workers found it (Odoo's version and protocol, what it lacks): no secrets.
    ("GET", "/api/crm"): SUPERVISOR_UP,
    # Figures.
    ("GET", "/api/labels"): SUPERVISOR_UP,
    ("GET", "/api/journey"): SUPERVISOR_UP,
    ("GET", "/api/figures"): SUPERVISOR_UP,
    ("GET", "/api/figures.csv"): SUPERVISOR_UP,
    ("GET", "/dashboard"): OPEN,  # a redirect to /inbox/labels, which checks the role
    ("GET", "/dashboard/contacts.csv"): Rule(SUPERVISORS, page=True),
    # Accounts: the list for supervisors; availability by its owner (checked in the route).
    ("GET", "/api/agents"): SUPERVISOR_UP,
    ("PUT", "/api/agents/{login}"): ALL_ROLES,
    ("POST", "/api/agents"): ADMIN_ONLY,
    ("DELETE", "/api/agents/{login}"): ADMIN_ONLY,
    # What automation knows and does: read by everyone, changed by admins.
    ("GET", "/api/faq"): ALL_ROLES,
    ("PUT", "/api/faq/{key}"): ADMIN_ONLY,
    ("DELETE", "/api/faq/{key}"): ADMIN_ONLY,
    ("GET", "/api/followup-rules"): SUPERVISOR_UP,
    ("GET", "/api/followup-rules/effects"): SUPERVISOR_UP,
    # The learned lead score: its figures, a refit and a rollback are the supervisors' (audited).
    ("GET", "/api/lead-model"): SUPERVISOR_UP,
    ("POST", "/api/lead-model/refit"): SUPERVISOR_UP,
    ("POST", "/api/lead-model/rollback"): SUPERVISOR_UP,
    ("PUT", "/api/followup-rules"): ADMIN_ONLY,
    ("POST", "/api/broadcasts"): ADMIN_ONLY,
    ("GET", "/api/broadcasts/{broadcast_id}"): ADMIN_ONLY,
    ("GET", "/api/contacts.csv"): ADMIN_ONLY,
    ("GET", "/api/audit"): ADMIN_ONLY,
    # Channels (several WhatsApp numbers) and the team inbox.
    ("GET", "/api/channels"): ADMIN_ONLY,
    ("POST", "/api/channels"): ADMIN_ONLY,
    ("PATCH", "/api/channels/{channel_id}"): ADMIN_ONLY,
    ("GET", "/api/inbox"): ADMIN_ONLY,
    # The inbox's live event stream: any signed-in role, each event filtered by the caller's teams.
    ("GET", "/api/events"): ALL_ROLES,
    # Rich messages: media files (those of a conversation for its team), templates, Flows.
    ("POST", "/api/media"): ALL_ROLES,
    ("GET", "/api/media/{media_id}"): ALL_ROLES,
    ("GET", "/api/templates"): ALL_ROLES,
    ("POST", "/api/templates/sync"): ADMIN_ONLY,
    ("GET", "/api/flows"): ADMIN_ONLY,
    ("GET", "/api/flows/{name}"): ADMIN_ONLY,
    ("POST", "/flows/{name}"): OPEN,  # Meta's Flows data endpoint: signed and encrypted
    # Campaigns: a tracked link redirects anyone (to its registered URL only); links are made by
    # admins; the figures are for supervisors (their teams'); the Conversions API outbox, admins.
    ("GET", "/r/{code:path}"): OPEN,
    ("POST", "/api/links"): ADMIN_ONLY,
    ("GET", "/api/campaigns"): SUPERVISOR_UP,
    ("GET", "/api/conversions"): ADMIN_ONLY,
    ("GET", "/t/{token}"): OPEN,  # the order tracker page: its signed, unguessable token is the key
    ("GET", "/f/{media_id}"): OPEN,  # a file of ours by its signed, expiring link (what WAHA fetches)
}


def same_as(method: str, path: str) -> Rule:
    """A page's form that calls an API route: the roles of that route, answered as a page."""
    return Rule(RULES[(method, path)].roles, page=True)


# The team inbox pages (web/): reading is for every role (the team rule hides the rest); each
# form has the roles of the API route it calls.
_CONVERSATION = "/api/conversations/{conversation_id}"
RULES.update(
    {
        ("GET", "/inbox/login"): OPEN,
        ("GET", "/inbox"): Rule(EVERYONE, page=True),
        ("GET", "/inbox/figures"): Rule(SUPERVISORS, page=True),
        ("GET", "/inbox/labels"): Rule(SUPERVISORS, page=True),
        ("GET", "/inbox/queue"): Rule(EVERYONE, page=True),
        ("GET", "/inbox/conversations/{conversation_id}"): Rule(EVERYONE, page=True),
        ("GET", "/inbox/conversations/{conversation_id}/thread"): Rule(EVERYONE, page=True),
        ("GET", "/inbox/conversations/{conversation_id}/panel"): Rule(EVERYONE, page=True),
        ("POST", "/inbox/language"): Rule(EVERYONE, page=True),
        ("POST", "/inbox/conversations/{conversation_id}/reply"): same_as(
            "POST", f"{_CONVERSATION}/messages"
        ),
        ("POST", "/inbox/conversations/{conversation_id}/template"): same_as(
            "POST", f"{_CONVERSATION}/messages"
        ),
        ("POST", "/inbox/conversations/{conversation_id}/attachment"): same_as(
            "POST", f"{_CONVERSATION}/messages"
        ),
        ("POST", "/inbox/conversations/{conversation_id}/assignee"): same_as(
            "POST", f"{_CONVERSATION}/assignee"
        ),
        ("POST", "/inbox/conversations/{conversation_id}/automation"): same_as(
            "POST", "/api/contacts/{contact_id}/automation"
        ),
        ("POST", "/inbox/conversations/{conversation_id}/close"): same_as("POST", f"{_CONVERSATION}/close"),
        ("POST", "/inbox/conversations/{conversation_id}/reopen"): same_as("POST", f"{_CONVERSATION}/reopen"),
        ("POST", "/inbox/conversations/{conversation_id}/notes"): same_as("POST", f"{_CONVERSATION}/notes"),
        ("POST", "/inbox/conversations/{conversation_id}/labels"): same_as(
            "POST", "/api/contacts/{contact_id}/labels/{name}"
        ),
        ("POST", "/inbox/conversations/{conversation_id}/labels/remove"): same_as(
            "DELETE", "/api/contacts/{contact_id}/labels/{name}"
        ),
    }
)


class PageAccess(HTTPException):
    """A dashboard page refused (anonymous: the sign-in form; signed in, wrong role: 403)."""


def endpoints(routes: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Every (method, path) an app serves through FastAPI (whose routes this dependency guards),
    included routers walked through."""
    found: list[tuple[str, str]] = []
    for route in routes:
        if hasattr(route, "original_router"):  # an included router (FastAPI >= 0.16x)
            context = getattr(route, "include_context", None)
            found += endpoints(route.original_router.routes, prefix + getattr(context, "prefix", ""))
        elif isinstance(route, APIRoute):
            found += [(m, prefix + route.path) for m in sorted(route.methods) if m != "HEAD"]
    return found


def rule_for(method: str, path: str) -> Rule | None:
    return RULES.get((method.upper(), path))


def allowed(rule: Rule | None, principal: Principal | None) -> bool:
    """The role check alone (teams are checked where the conversation or contact is read)."""
    if rule is None:
        return False
    if rule.roles == ANYONE:
        return True
    return principal is not None and principal.role in rule.roles


async def enforce(request: Request) -> None:
    """The app-level dependency: find the caller, apply the route's rule, check CSRF for a
    browser session's state-changing request. Sets ``request.state.principal``."""
    route: Any = request.scope.get("route")
    path = getattr(route, "path", request.url.path)
    methods = [request.method] if request.method != "HEAD" else ["HEAD", "GET"]
    rule = next((r for m in methods if (r := rule_for(m, path)) is not None), None)
    if rule is None:
        raise HTTPException(403, f"no permission rule for {request.method} {path}: closed by default")
    if rule.roles == ANYONE:
        request.state.principal = None
        return
    try:
        principal = await run_in_threadpool(resolve, request)
    except HTTPException as exc:
        if rule.page:
            raise PageAccess(401, "your session has ended: sign in again") from exc
        raise
    request.state.principal = principal
    if principal is None:
        if rule.page:
            raise PageAccess(401, "")
        problem = admin_token_state(request.app.state.settings)
        if problem:
            # Nothing to sign in with but accounts: say why the token does not open the API.
            raise HTTPException(503, f"{problem}: the API takes accounts' tokens only (POST /api/auth/token)")
        raise HTTPException(
            401,
            "a credential is required: 'Authorization: Bearer <token>' (POST /api/auth/token)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not allowed(rule, principal):
        message = f"{principal.login} ({principal.role}) may not {request.method} {path}"
        raise PageAccess(403, message) if rule.page else HTTPException(403, message)
    if request.method in UNSAFE_METHODS and principal.csrf is not None and _by_cookie(request):
        await _check_csrf(request, principal.csrf)


def _by_cookie(request: Request) -> bool:
    return not request.headers.get("authorization") and bool(request.cookies.get(SESSION_COOKIE))


async def _check_csrf(request: Request, expected: str) -> None:
    given = request.headers.get(CSRF_HEADER)
    content_type = request.headers.get("content-type", "")
    if given is None and content_type.startswith("application/x-www-form-urlencoded"):
        body = await request.body()  # cached: the route reads the same body again
        given = (parse_qs(body.decode(errors="replace")).get(CSRF_FIELD) or [""])[0]
    elif given is None and content_type.startswith("multipart/form-data"):
        # A file form sent without JavaScript (htmx would add the header). The parsed form is
        # cached on the request, so the route reads the same form, file included.
        field = (await request.form()).get(CSRF_FIELD)
        given = field if isinstance(field, str) else ""
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            403, f"the form's CSRF token is missing or wrong ({CSRF_HEADER} or '{CSRF_FIELD}')"
        )


def contact_in_reach(session: Session, principal: Principal, contact_id: int) -> None:
    """404 for a contact none of whose conversations is in the caller's teams."""
    if principal.teams is not None and not (contact_teams(session, contact_id) & principal.teams):
        raise HTTPException(404, f"no contact {contact_id}")


def conversation_in_reach(session: Session, principal: Principal, conversation_id: int) -> None:
    """404 for a conversation outside the caller's teams."""
    if principal.teams is not None and conversation_team(session, conversation_id) not in principal.teams:
        raise HTTPException(404, f"no conversation {conversation_id}")


def page_access_handler(request: Request, exc: Exception) -> Response:
    """Anonymous on a page: the sign-in form; a signed-in role without the right: a 403 page."""
    assert isinstance(exc, PageAccess)
    if exc.status_code == 401 and request.url.path.startswith("/inbox"):
        # The inbox's own sign-in page (in the reader's language), then back to where they were.
        target = "/inbox/login?" + urlencode({"next": request.url.path})
        if request.headers.get("HX-Request"):  # a fragment: htmx sends the whole window there
            return Response(status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
    if exc.status_code == 401:
        return dashboard.login_page(exc.detail or None)
    return dashboard.forbidden_page(str(exc.detail))


def install(application: Any) -> None:
    """Called by the app factory: the page handler (the dependency is given to the app itself)."""
    application.add_exception_handler(PageAccess, page_access_handler)
