"""``/dashboard``: signing in and out for every page, and the label segment's CSV. The label
dashboard itself is now the inbox's labels page (``web/labels.py``); ``GET /dashboard`` sends
old bookmarks there.

Access: decided by ``api/permissions.py`` like every route. A person signs in with their login
and password, or with ``ADMIN_TOKEN`` (a form); the browser then holds a session cookie
(``Path=/``, HttpOnly, SameSite=Lax, Secure over https) whose value is a random secret of a
server-side session row, valid ``SESSION_HOURS``. Signing out revokes the row, so the old cookie
is refused from then on. Every state-changing form carries the session's CSRF token. Scripts
send a bearer header instead.
"""

from __future__ import annotations

import hmac
from datetime import timedelta
from html import escape
from typing import Annotated
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from api import labels as data
from api.accounts import client_address
from api.auth import ADMIN_LOGIN, SESSION_COOKIE, issue, token_hash, usable_admin_token
from models import AuthToken
from models.accounts import SESSION
from models.base import utcnow
from models.db import session_scope
from pipeline import accounts
from settings import settings

router = APIRouter(tags=["dashboard"], include_in_schema=False)

CSRF_FIELD = "csrf"
# The bad pair's counter for wrong ADMIN_TOKENs typed into the form.
ADMIN_TOKEN_KEY = "ADMIN_TOKEN"
LOGIN_FORM_MAX_BYTES = 4096


@router.get("/dashboard")
def dashboard(request: Request) -> Response:
    """The label dashboard is now a page of the inbox: old bookmarks land there (its query kept:
    ``label``, ``q``; ``days`` is 7, 30 or 90 there)."""
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(f"/inbox/labels{query}", status_code=303)


@router.get("/dashboard/contacts.csv")
def export_segment(label: Annotated[str, Query(min_length=1, max_length=255)]) -> Response:
    """The contact list's CSV export, for a signed-in browser (``/api/contacts.csv`` for scripts)."""
    return data.export_segment(label)


@router.post("/dashboard/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Sign in with ``login`` + ``password`` (an account) or ``token`` (ADMIN_TOKEN): a session
    cookie for every page. Wrong pairs are counted and slowed down as for the API."""
    # The whole app caps bodies at API_MAX_BODY_BYTES before reading (producers.security.BodyLimit);
    # a login form is far smaller.
    body = await request.body()
    if len(body) > LOGIN_FORM_MAX_BYTES:
        return _page("Too large", f"<p>The form is larger than {LOGIN_FORM_MAX_BYTES} bytes.</p>", 413)
    form = parse_qs(body.decode(errors="replace"))
    login_name, password, given_token = ((form.get(f) or [""])[0] for f in ("login", "password", "token"))
    address = client_address(request)
    admin_token = usable_admin_token(request.app.state.settings)
    expires = utcnow() + timedelta(hours=settings.session_hours)

    def attempt() -> tuple[int | None, str | None]:
        """The throttle, the check (argon2: kept off the event loop) and the session row."""
        wait, secret = None, None
        with session_scope() as session:
            if given_token:
                wait = accounts.throttle_wait(session, ADMIN_TOKEN_KEY, address)
                if wait is None:
                    if admin_token and hmac.compare_digest(given_token.encode(), admin_token.encode()):
                        secret, _ = issue(
                            session, kind=SESSION, login=ADMIN_LOGIN, agent_id=None, expires_at=expires
                        )
                    else:
                        accounts.record_failure(session, ADMIN_TOKEN_KEY, address)
            elif login_name and password:
                result = accounts.sign_in(session, login_name, password, address)
                wait = result.retry_after
                if result.agent is not None:
                    secret, _ = issue(
                        session,
                        kind=SESSION,
                        login=result.agent.login,
                        agent_id=result.agent.id,
                        expires_at=expires,
                    )
        return wait, secret

    wait, secret = await run_in_threadpool(attempt)
    if wait is not None:
        page = login_page(f"Too many failed sign-ins: try again in {wait} seconds.", status=429)
        page.headers["Retry-After"] = str(wait)
        return page
    # The team inbox's sign-in form posts here too, with the page to go back to.
    back = (form.get("next") or [""])[0]
    back = back if back.startswith("/inbox") else ""
    if secret is None:
        if back:
            failed = urlencode({"next": back, "failed": "1"})
            return RedirectResponse(f"/inbox/login?{failed}", status_code=303)
        return login_page("Wrong login or password." if not given_token else "That token is not right.")
    response = RedirectResponse(back or "/dashboard", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(settings.session_hours * 3600),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/dashboard/logout")
async def logout(request: Request) -> Response:
    """Sign out: the session row is revoked (the old cookie is refused from now on). The form
    carries the session's CSRF token; a live session without it is not signed out (403)."""
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        given = (parse_qs((await request.body()).decode(errors="replace")).get(CSRF_FIELD) or [""])[0]
        with session_scope() as session:
            row = session.scalar(
                select(AuthToken)
                .where(AuthToken.token_hash == token_hash(secret), AuthToken.kind == SESSION)
                .with_for_update()
            )
            live = row is not None and row.revoked_at is None
            if live and not hmac.compare_digest(given.encode(), (row.csrf or "").encode()):
                return forbidden_page("the form's CSRF token is missing or wrong: sign out from the page")
            if live:
                row.revoked_at = utcnow()
    # The inbox's sign-in page with no page to go back to: whoever signs in next lands on the
    # queue, which every role may see (the labels page is for supervisors).
    response = RedirectResponse("/inbox/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def login_page(error: str | None = None, status: int = 401) -> HTMLResponse:
    message = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    form = f"""
<form method="post" action="/dashboard/login" class="login">
  <h1>Sign in</h1>{message}
  <label for="login">Login</label>
  <input id="login" name="login" autocomplete="username" autocapitalize="none" autofocus>
  <label for="password">Password</label>
  <input id="password" name="password" type="password" autocomplete="current-password">
  <p class="muted">or, instead of a login and password:</p>
  <label for="token">Admin token</label>
  <input id="token" name="token" type="password" autocomplete="off">
  <button type="submit">Sign in</button>
</form>"""
    return _page("Sign in", form, status)


def forbidden_page(detail: str) -> HTMLResponse:
    body = f"""
<main class="login"><h1>Not for your role</h1><p>{escape(detail)}.</p>
<form method="post" action="/dashboard/logout"><button type="submit">Sign out</button></form></main>"""
    return _page("Forbidden", body, 403)


_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 960px; padding: 16px; color: #222; }
.muted { color: #666; } .error { color: #b00020; }
.login { max-width: 320px; margin: 80px auto; display: flex; flex-direction: column; gap: 8px; }
.login input, .login button { font-size: 16px; padding: 8px; }
.login input { box-sizing: border-box; width: 100%; } .login p { margin: 4px 0 0; }
"""


def _page(title: str, body: str, status: int) -> HTMLResponse:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · WhatsApp CRM</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )
    return HTMLResponse(
        html,
        status_code=status,
        headers={
            "Content-Security-Policy": (
                "default-src 'none'; style-src 'unsafe-inline'; script-src 'none'; "
                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
            ),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
