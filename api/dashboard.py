"""``/dashboard``: the label dashboard, one server-rendered page, charts drawn as inline SVG.

Nothing is fetched from any other host (no CDN, no fonts, no chart library): the page is the
numbers, drawn on the server, plus a few lines of inline script that filter the contact list as
one types (the search form works without it, on the server). The Content-Security-Policy says so.

Access: decided by ``api/permissions.py`` like every route (supervisors and admins see the label
dashboard). A person signs in with their login and password, or with ``ADMIN_TOKEN`` (a form);
the browser then holds a session cookie (``Path=/``, HttpOnly, SameSite=Lax, Secure over https)
whose value is a random secret of a server-side session row, valid ``SESSION_HOURS``. Signing out
revokes the row, so the old cookie is refused from then on. Every state-changing form carries
the session's CSRF token. Scripts send a bearer header instead.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from html import escape
from typing import Annotated
from urllib.parse import parse_qs, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from api import labels as data
from api.accounts import client_address
from api.auth import ADMIN_LOGIN, SESSION_COOKIE, Caller, issue, token_hash, usable_admin_token
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
PALETTE = ("#25d366", "#128c7e", "#34b7f1", "#f4b400", "#db4437", "#7e57c2", "#ff7043", "#8d6e63")
CONTACT_LIST_LIMIT = 500
LOGIN_FORM_MAX_BYTES = 4096


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(
    request: Request,
    caller: Caller,
    label: Annotated[str | None, Query(max_length=255)] = None,
    q: Annotated[str, Query(max_length=100)] = "",
    days: Annotated[int, Query(ge=1, le=90)] = 14,
) -> Response:
    target: str = request.app.state.settings.target_label
    with session_scope() as session:
        counts = data.label_counts(session)
        dates, flow = data.label_flow(session, days)
        staff = data.staff_quality(session, target, days)
        sources = data.lead_sources(session, target)
        names = [item.name for item in counts]
        chosen = label or (target if target in names else (names[0] if names else None))
        # One more than is shown, to know whether there are more.
        members = (
            data.segment(session, chosen, limit=CONTACT_LIST_LIMIT + 1, search=q.strip().lower())
            if chosen
            else []
        )
    nonce = secrets.token_urlsafe(16)
    body = "\n".join(
        (
            _header(target, caller.login, caller.role, caller.csrf),
            _section(
                "chart-labels",
                "Contacts per label",
                _bar_chart(
                    [(i.name, i.contacts, str(i.contacts), i.color_hex) for i in counts],
                    empty="No labels yet.",
                ),
            ),
            _section("chart-flow", f"Entered and left, last {days} days", _flow(dates, flow)),
            _section(
                "chart-staff",
                f"Labels given per staff member, last {days} days, and the share that reached {target}",
                _bar_chart(
                    [
                        (
                            s.staff,
                            s.labels_given,
                            f"{_count(s.labels_given, 'label')} · {_count(s.contacts, 'contact')} · "
                            f"{round(100 * s.share)}% reached {target}",
                            None,
                        )
                        for s in staff
                    ],
                    empty="No label given yet.",
                ),
            ),
            _section(
                "chart-sources",
                "Lead sources",
                _bar_chart(
                    [
                        (
                            s.source,
                            s.contacts,
                            f"{_count(s.contacts, 'contact')} · {s.with_target} {target}",
                            None,
                        )
                        for s in sources
                    ],
                    empty="No contacts yet.",
                ),
            ),
            _section("contacts", "Contacts with a label", _contact_list(names, chosen, q, members)),
            _SCRIPT.replace("{nonce}", nonce),
        )
    )
    return _page("Labels", body, 200, nonce)


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
    response = RedirectResponse("/dashboard", status_code=303)
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


def _header(target: str, login: str, role: str, csrf: str | None) -> str:
    token = f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(csrf)}">' if csrf else ""
    return f"""
<header>
  <h1>Labels</h1>
  <span class="muted">target label: <strong>{escape(target)}</strong></span>
  <span id="who" class="muted">{escape(login)} ({escape(role)})</span>
  <form method="post" action="/dashboard/logout">{token}<button type="submit">Sign out</button></form>
</header>"""


def _section(section_id: str, title: str, content: str) -> str:
    return f'<section id="{section_id}"><h2>{escape(title)}</h2>{content}</section>'


def _bar_chart(rows: Sequence[tuple[str, int, str, str | None]], *, empty: str) -> str:
    """Horizontal bars: name, bar, and the figure written out, so it reads without hovering."""
    if not rows:
        return f'<p class="muted">{escape(empty)}</p>'
    width, name_w, bar_w, row_h = 860, 200, 300, 30
    top = max((value for _, value, _, _ in rows), default=0) or 1
    parts = [
        f'<svg class="chart" role="img" width="{width}" height="{row_h * len(rows) + 8}" '
        f'viewBox="0 0 {width} {row_h * len(rows) + 8}">'
    ]
    for i, (name, value, caption, color) in enumerate(rows):
        y = 4 + i * row_h
        length = max(2.0, bar_w * value / top) if value else 0
        fill = color or PALETTE[i % len(PALETTE)]
        parts.append(
            f'<g class="bar" data-name="{escape(name)}" data-value="{value}">'
            f"<title>{escape(name)}: {escape(caption)}</title>"
            f'<text class="name" x="{name_w - 8}" y="{y + 19}" text-anchor="end">'
            f"{escape(_short(name))}</text>"
            f'<rect x="{name_w}" y="{y + 4}" width="{length:.1f}" height="{row_h - 10}" rx="3" '
            f'fill="{escape(fill)}"/>'
            f'<text class="value" x="{name_w + length + 8:.1f}" y="{y + 19}">{escape(caption)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _flow(dates: list, flow: dict[str, dict]) -> str:
    """Per label: a column per day, up for contacts that entered the label, down for those that
    left; the totals written beside it."""
    if not flow:
        return '<p class="muted">No label changes in this period.</p>'
    col, height, mid, left_pad = 22, 120, 60, 10
    width = left_pad + col * len(dates) + 30  # room for the last date
    blocks = []
    for name in sorted(flow, key=str.lower):
        days = flow[name]
        top = max(max(d.entered, d.left) for d in days.values()) or 1
        entered, left = sum(d.entered for d in days.values()), sum(d.left for d in days.values())
        svg = [
            f'<svg class="flow" role="img" width="{width}" height="{height + 18}" '
            f'viewBox="0 0 {width} {height + 18}">'
        ]
        svg.append(f'<line x1="0" x2="{width}" y1="{mid}" y2="{mid}" stroke="#bbb"/>')
        for i, day in enumerate(dates):
            x = left_pad + i * col
            d = days[day]
            up, down = (mid - 16) * d.entered / top, (mid - 16) * d.left / top  # room for the figures
            label = f"{day.isoformat()}: {d.entered} entered, {d.left} left"
            svg.append(f'<g class="day" data-date="{day.isoformat()}"><title>{escape(label)}</title>')
            if d.entered:
                svg.append(
                    f'<rect x="{x}" y="{mid - up:.1f}" width="{col - 6}" height="{up:.1f}" fill="#25d366"/>'
                )
                svg.append(f'<text x="{x}" y="{mid - up - 2:.1f}" class="small">{d.entered}</text>')
            if d.left:
                svg.append(f'<rect x="{x}" y="{mid}" width="{col - 6}" height="{down:.1f}" fill="#db4437"/>')
                svg.append(f'<text x="{x}" y="{mid + down + 10:.1f}" class="small">{d.left}</text>')
            if i % 7 == 0 or i == len(dates) - 1:
                svg.append(f'<text x="{x}" y="{height + 14}" class="small">{day.strftime("%d %b")}</text>')
            svg.append("</g>")
        svg.append("</svg>")
        blocks.append(
            f'<div class="flow-label" data-name="{escape(name)}"><h3>{escape(name)}</h3>'
            f'<p class="totals"><span class="entered">{entered} entered</span> · '
            f'<span class="left">{left} left</span></p>{"".join(svg)}</div>'
        )
    return "".join(blocks)


def _contact_list(names: list[str], chosen: str | None, q: str, members: list[data.SegmentMember]) -> str:
    if not names:
        return '<p class="muted">No labels yet.</p>'
    zone = ZoneInfo(settings.timezone)
    options = "".join(
        f'<option value="{escape(n)}"{" selected" if n == chosen else ""}>{escape(n)}</option>' for n in names
    )
    rows = "".join(
        f'<tr class="contact-row" data-id="{m.id}"><td>{escape(m.name or "—")}</td>'
        f"<td>{escape(m.phone or '—')}</td><td>{escape(m.lead_source)}</td>"
        f"<td>{_local(m.labelled_at, zone)}</td><td>{escape(m.labelled_by or '—')}</td>"
        f"<td>{'opted out' if m.opted_out_at else ''}</td></tr>"
        for m in members[:CONTACT_LIST_LIMIT]
    )
    export = (
        f'<a id="export" href="/dashboard/contacts.csv?{escape(urlencode({"label": chosen or ""}))}">CSV</a>'
    )
    more = (
        f'<p class="muted">Showing the first {CONTACT_LIST_LIMIT}; search to narrow, '
        f"or export them all ({export}).</p>"
        if len(members) > CONTACT_LIST_LIMIT
        else f"<p>Export: {export}</p>"
    )
    return f"""
<form method="get" action="/dashboard#contacts" class="filters">
  <label for="label-select">Label</label>
  <select id="label-select" name="label">{options}</select>
  <label for="search">Search</label>
  <input id="search" name="q" type="search" value="{escape(q)}" placeholder="name or phone">
  <button type="submit">Show</button>
</form>
<p><strong id="shown">{min(len(members), CONTACT_LIST_LIMIT)}</strong> contacts with
<strong>{escape(chosen or "")}</strong></p>
<div class="table-wrap"><table><thead><tr>
<th>Name</th><th>Phone</th><th>Lead source</th><th>Labelled</th><th>By</th><th></th>
</tr></thead>
<tbody>{rows}</tbody></table></div>{more}"""


def _local(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _short(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


_SCRIPT = """<script nonce="{nonce}">
(function () {
  var box = document.getElementById("search");
  var select = document.getElementById("label-select");
  if (select) select.addEventListener("change", function () { select.form.submit(); });
  if (!box) return;
  box.addEventListener("input", function () {
    var needle = box.value.trim().toLowerCase(), shown = 0;
    document.querySelectorAll("#contacts tbody tr").forEach(function (row) {
      var hit = row.textContent.toLowerCase().indexOf(needle) !== -1;
      row.hidden = !hit;
      if (hit) shown += 1;
    });
    document.getElementById("shown").textContent = shown;
  });
})();
</script>"""

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 960px; padding: 16px; color: #222; }
header { display: flex; flex-wrap: wrap; gap: 8px 16px; align-items: center; }
header form { margin-left: auto; }
svg { max-width: 100%; height: auto; } .table-wrap { overflow-x: auto; }
section { margin: 24px 0; } h2 { font-size: 18px; border-bottom: 1px solid #ddd; } h3 { margin: 8px 0 0; }
.chart text, .flow text { font-size: 13px; fill: #222; } .flow text.small { font-size: 10px; fill: #555; }
.muted { color: #666; } .error { color: #b00020; } .entered { color: #128c7e; } .left { color: #b00020; }
table { border-collapse: collapse; width: 100%; } td, th { text-align: left; padding: 4px 8px; }
tbody tr:nth-child(odd) { background: #f6f6f6; } .filters { display: flex; gap: 8px; align-items: center; }
.login { max-width: 320px; margin: 80px auto; display: flex; flex-direction: column; gap: 8px; }
.login input, .login button { font-size: 16px; padding: 8px; }
.login input { box-sizing: border-box; width: 100%; } .login p { margin: 4px 0 0; }
"""


def _page(title: str, body: str, status: int, nonce: str | None = None) -> HTMLResponse:
    script = f"'nonce-{nonce}'" if nonce else "'none'"
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
                f"default-src 'none'; style-src 'unsafe-inline'; script-src {script}; "
                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
            ),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
