"""Accounts, sign-in, tokens, sessions and permissions against the real app on PostgreSQL (and
the real worker where a message is ingested or sent)."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select, update

from api.permissions import ANYONE, RULES, endpoints
from models import AuthToken, Contact, Conversation
from models.base import utcnow
from models.db import session_scope
from pipeline import accounts
from testkit import samples
from testkit.processes import wait_for

BUDI = "6281212345678"
PASSWORD = "teh-manis-dingin-42"


def add(client, admin_headers, login: str, role: str = "agent", teams=("sales",), password=PASSWORD):
    body = {"login": login, "name": login.title(), "role": role, "teams": list(teams), "password": password}
    answer = client.post("/api/agents", json=body, headers=admin_headers)
    assert answer.status_code == 201, answer.text
    return answer.json()


def token_of(client, login: str, password: str = PASSWORD) -> dict[str, str]:
    answer = client.post("/api/auth/token", json={"login": login, "password": password})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def conversation_of_budi(client, drained) -> tuple[int, int]:
    body, headers = samples.encode(samples.inbound_text(BUDI, "Budi", "Halo kak, masih ada stok?"))
    assert client.post("/webhooks/whatsapp", content=body, headers=headers).status_code == 200
    drained()
    with session_scope() as session:
        conversation = session.scalars(select(Conversation)).one()
        return conversation.contact_id, conversation.id


def test_accounts_are_created_with_strong_passwords_only(client, admin_headers):
    created = add(client, admin_headers, "ayu", teams=("sales", "service"))
    assert (created["role"], created["teams"], created["active"]) == ("agent", ["sales", "service"], True)
    again = client.post(
        "/api/agents", json={"login": "ayu", "role": "agent", "password": PASSWORD}, headers=admin_headers
    )
    assert again.status_code == 409
    for password, rule in ((None, "required"), ("pendek", "at least 10"), ("budi-1234-budi", "login")):
        body = {"login": "budi", "role": "agent", "password": password}
        weak = client.post("/api/agents", json=body, headers=admin_headers)
        assert weak.status_code == 422 and rule in weak.json()["detail"], weak.text
    common = client.post(
        "/api/agents", json={"login": "budi", "password": "password123"}, headers=admin_headers
    )
    assert common.status_code == 422 and "common" in common.json()["detail"]
    listed = client.get("/api/agents", headers=admin_headers).json()
    assert [a["login"] for a in listed] == ["ayu"] and "password" not in str(listed).lower()


def test_signing_in_gives_a_bearer_token_with_the_accounts_role(client, admin_headers):
    add(client, admin_headers, "ayu")
    answer = client.post("/api/auth/token", json={"login": "ayu", "password": PASSWORD})
    assert answer.status_code == 200 and answer.json()["expires_at"]
    agent = {"Authorization": f"Bearer {answer.json()['token']}"}
    assert client.get("/api/contacts", headers=agent).status_code == 200
    assert client.post("/api/broadcasts", json={"label": "x", "text": "y"}, headers=agent).status_code == 403
    wrong = client.post("/api/auth/token", json={"login": "ayu", "password": "not-her-password"})
    unknown = client.post("/api/auth/token", json={"login": "nobody", "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json(), "an unknown login and a wrong password answer alike"
    # An admin sets a new password (an agent migrated from before accounts has none).
    assert (
        client.put("/api/agents/ayu", json={"password": "pendek"}, headers=admin_headers).status_code == 422
    )
    assert client.put(
        "/api/agents/ayu", json={"password": "rujak-buah-segar"}, headers=admin_headers
    ).is_success
    assert client.put("/api/agents/ayu", json={"password": "x" * 12}, headers=agent).status_code == 403
    token_of(client, "ayu", "rujak-buah-segar")


def test_repeated_wrong_passwords_are_slowed_down(client, admin_headers, caplog):
    add(client, admin_headers, "ayu")
    for _ in range(accounts.MAX_FAILURES_PER_LOGIN):
        wrong = client.post("/api/auth/token", json={"login": "ayu", "password": "guess-guess-guess"})
        assert wrong.status_code == 401
    refused = client.post("/api/auth/token", json={"login": "ayu", "password": PASSWORD})
    assert refused.status_code == 429, "even the right password waits out the window"
    assert 0 < int(refused.headers["Retry-After"]) <= accounts.FAILURE_WINDOW.total_seconds() + 1
    failures = [r for r in caplog.records if r.getMessage().startswith("sign-in failed")]
    assert len(failures) == accounts.MAX_FAILURES_PER_LOGIN and all(r.login == "ayu" for r in failures)
    assert "guess-guess-guess" not in caplog.text, "never the password"
    # Another login is not held up (the address has its own, higher, limit).
    add(client, admin_headers, "bayu")
    assert client.post("/api/auth/token", json={"login": "bayu", "password": PASSWORD}).status_code == 200


def test_personal_tokens_are_shown_once_listed_without_secret_and_revocable(client, admin_headers):
    add(client, admin_headers, "ayu")
    agent = token_of(client, "ayu")
    made = client.post("/api/tokens", json={"name": "export script"}, headers=agent)
    assert made.status_code == 201
    secret, token_id = made.json()["token"], made.json()["id"]
    script = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/contacts", headers=script).status_code == 200
    listed = client.get("/api/tokens", headers=agent).json()
    assert [t["id"] for t in listed] == [token_id] and secret not in str(listed)
    with session_scope() as session:
        stored = session.get(AuthToken, token_id)
        assert stored.token_hash != secret and len(stored.token_hash) == 64
    assert client.delete(f"/api/tokens/{token_id}", headers=agent).status_code == 204
    assert client.get("/api/contacts", headers=script).status_code == 401
    # An expired sign-in token is refused too.
    with session_scope() as session:
        session.execute(update(AuthToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert client.get("/api/contacts", headers=agent).status_code == 401


ENDLESS = {"/api/events"}  # server-sent events: the answer is a stream that stays open


def test_every_endpoint_answers_each_role_as_the_table_says(client, admin_headers):
    """Each endpoint with each role: a role the table leaves out gets 403 (anonymous and a
    revoked token 401), a role it names never gets the table's 403."""
    add(client, admin_headers, "sri", role="supervisor")
    add(client, admin_headers, "ayu")
    add(client, admin_headers, "ana", role="admin", teams=())
    callers = {
        "admin": token_of(client, "ana"),
        "supervisor": token_of(client, "sri"),
        "agent": token_of(client, "ayu"),
        "anonymous": {},
    }
    made = client.post("/api/tokens", json={"name": "old"}, headers=callers["agent"]).json()
    assert client.delete(f"/api/tokens/{made['id']}", headers=callers["agent"]).status_code == 204
    callers["revoked"] = {"Authorization": f"Bearer {made['token']}"}
    routes = sorted(set(endpoints(client.app.routes)))
    assert len(routes) > 40
    for method, template in routes:
        rule = RULES[(method, template)]
        if rule.roles == ANYONE:
            continue
        path = re.sub(r"\{[^}]+\}", "1", template)
        for name, headers in callers.items():
            if template in ENDLESS and name in rule.roles:
                continue  # an open stream never ends in the in-process client: tests/system/test_live.py
            answer = client.request(
                method, path, params={"label": "x"}, headers=headers, json={}, follow_redirects=False
            )
            where = f"{name}: {method} {template} -> {answer.status_code} {answer.text[:120]}"
            if name in ("anonymous", "revoked") and template.startswith("/inbox"):
                # The inbox's pages send a stranger to its sign-in page, and its fragments say so.
                assert answer.status_code in (303, 401), where
                assert "/inbox/login" in (answer.headers.get("location") or answer.headers["hx-redirect"]), (
                    where
                )
            elif name in ("anonymous", "revoked"):
                assert answer.status_code == 401, where
            elif name in rule.roles:
                assert answer.status_code != 401 and "may not" not in answer.text, where
            else:
                assert answer.status_code == 403, where


def test_an_agent_sees_only_the_conversations_of_their_teams(
    client, admin_headers, worker, drained, cloud_api
):
    """The conversation's team is DEFAULT_TEAM ("sales") until channels give it one: an agent of
    Service finds neither the contact nor the conversation (404); an agent of Sales does."""
    contact_id, conversation_id = conversation_of_budi(client, drained)
    add(client, admin_headers, "sari", teams=("service",))
    add(client, admin_headers, "ayu", teams=("sales",))
    service, sales = token_of(client, "sari"), token_of(client, "ayu")
    reply = {"text": "Masih ada kak"}
    for path in (f"/api/contacts/{contact_id}", f"/api/contacts/{contact_id}/messages"):
        assert client.get(path, headers=service).status_code == 404
        assert client.get(path, headers=sales).status_code == 200
    assert client.get("/api/contacts", headers=service).json()["items"] == []
    assert [c["id"] for c in client.get("/api/contacts", headers=sales).json()["items"]] == [contact_id]
    sent = f"/api/conversations/{conversation_id}/messages"
    assert client.post(sent, json=reply, headers=service).status_code == 404
    assert (
        client.post(
            f"/api/contacts/{contact_id}/automation", json={"paused": True}, headers=service
        ).status_code
        == 404
    )
    assert client.post(sent, json=reply, headers={**sales, "X-Actor": "mallory"}).status_code == 202
    wait_for(lambda: [b["text"]["body"] for b in cloud_api.accepted] == ["Masih ada kak"], 30, "reply sent")
    entry = client.get("/api/audit", headers=admin_headers).json()["items"][0]
    assert (entry["actor"], entry["action"]) == ("ayu", "conversation.replied")


def test_a_supervisor_reassigns_an_agent_cannot_and_the_audit_names_who_did(
    client, admin_headers, worker, drained
):
    _, conversation_id = conversation_of_budi(client, drained)
    add(client, admin_headers, "sri", role="supervisor")
    add(client, admin_headers, "ayu")
    add(client, admin_headers, "bayu")
    supervisor, agent = token_of(client, "sri"), token_of(client, "ayu")
    path = f"/api/conversations/{conversation_id}/assignee"
    assert client.post(path, json={"agent": "ayu"}, headers=agent).status_code == 403
    moved = client.post(path, json={"agent": "bayu"}, headers={**supervisor, "X-Actor": "ayu"})
    assert moved.status_code == 200 and moved.json()["owner_agent"] == "bayu"
    entry = client.get(
        "/api/audit", params={"subject": f"conversation:{conversation_id}"}, headers=admin_headers
    )
    assert [(e["actor"], e["details"]["agent"]) for e in entry.json()["items"]] == [("sri", "bayu")]
    # An agent changes only their own availability.
    assert (
        client.put("/api/agents/ayu", json={"available": False}, headers=agent).json()["available"] is False
    )
    assert client.put("/api/agents/bayu", json={"available": False}, headers=agent).status_code == 403
    assert client.put("/api/agents/ayu", json={"teams": ["vip"]}, headers=agent).status_code == 403


def test_a_deleted_agents_conversations_go_back_to_the_team_queue(client, admin_headers, worker, drained):
    contact_id, conversation_id = conversation_of_budi(client, drained)
    add(client, admin_headers, "ayu")
    path = f"/api/conversations/{conversation_id}/assignee"
    assert client.post(path, json={"agent": "ayu"}, headers=admin_headers).status_code == 200
    ayu = token_of(client, "ayu")
    assert client.delete("/api/agents/ayu", headers=admin_headers).status_code == 204
    with session_scope() as session:
        assert session.get(Conversation, conversation_id).owner_agent is None
        assert session.get(Contact, contact_id).assigned_agent is None
    entry = client.get("/api/audit", params={"subject": "agent:ayu"}, headers=admin_headers).json()["items"][
        0
    ]
    assert (entry["actor"], entry["action"]) == ("admin", "agent.deleted")
    assert entry["details"]["released_conversations"] == [conversation_id]
    assert client.get("/api/contacts", headers=ayu).status_code == 401, "their tokens went with them"
    assert client.delete("/api/agents/ayu", headers=admin_headers).status_code == 404


def test_a_weak_admin_token_is_refused_and_says_why(make_client):
    client = make_client(admin_token="change-me")
    answer = client.get("/api/contacts", headers={"Authorization": "Bearer change-me"})
    assert answer.status_code == 401
    closed = client.get("/api/contacts")
    assert closed.status_code == 503 and "ADMIN_TOKEN is refused" in closed.json()["detail"]
    form = client.post("/dashboard/login", data={"token": "change-me"}, follow_redirects=False)
    assert form.status_code == 401 and "not right" in form.text


def test_a_dashboard_session_is_revoked_by_signing_out_and_expires(client, admin_headers):
    add(client, admin_headers, "sri", role="supervisor")
    wrong = client.post("/dashboard/login", data={"login": "sri", "password": "nope-nope-nope"})
    assert wrong.status_code == 401 and "Wrong login or password" in wrong.text
    signed_in = client.post(
        "/dashboard/login", data={"login": "sri", "password": PASSWORD}, follow_redirects=False
    )
    assert signed_in.status_code == 303
    cookie = signed_in.headers["set-cookie"]
    assert all(part in cookie for part in ("HttpOnly", "SameSite=lax", "Path=/;", "Max-Age="))
    page = client.get("/inbox/labels")
    assert page.status_code == 200 and "sri (supervisor)" in page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    # The session works for the API as well, and a state-changing call needs the CSRF token.
    assert client.get("/api/queue").status_code == 200
    assert client.post("/api/conversations/1/assignee", json={"agent": None}).status_code == 403
    guarded = client.post(
        "/api/conversations/1/assignee", json={"agent": None}, headers={"X-CSRF-Token": csrf}
    )
    assert guarded.status_code == 404
    old = client.cookies.get("wacrm_session")
    assert client.post("/dashboard/logout", data={}, follow_redirects=False).status_code == 403
    out = client.post("/dashboard/logout", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/inbox/login"
    client.cookies.set("wacrm_session", old)
    refused = client.get("/inbox/labels", follow_redirects=False)
    assert refused.status_code == 303, "the old cookie is refused"
    assert 'name="password"' in client.get(refused.headers["location"]).text, "the sign-in form"
    # SESSION_HOURS: an expired session is refused the same way.
    client.cookies.clear()
    client.post("/dashboard/login", data={"login": "sri", "password": PASSWORD})
    assert client.get("/inbox/labels").status_code == 200
    with session_scope() as session:
        session.execute(update(AuthToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    expired = client.get("/inbox/labels", follow_redirects=False)
    assert expired.status_code == 303 and expired.headers["location"].startswith("/inbox/login")


def test_an_agent_signed_in_to_the_dashboard_is_told_the_page_is_not_for_their_role(client, admin_headers):
    add(client, admin_headers, "ayu")
    client.post("/dashboard/login", data={"login": "ayu", "password": PASSWORD})
    page = client.get("/inbox/labels")
    assert page.status_code == 403 and "ayu (agent) may not" in page.text


def test_round_robin_takes_members_of_the_team_only(client, admin_headers):
    from models import Channel
    from models import Contact as ContactRow
    from models import Conversation as ConversationRow
    from models.base import utcnow
    from pipeline.assignment import assign

    add(client, admin_headers, "ayu", teams=("service", "sales"))
    add(client, admin_headers, "bayu", teams=("service",))
    add(client, admin_headers, "citra", teams=("sales",))
    assert client.put("/api/agents/citra", json={"active": False}, headers=admin_headers).status_code == 200
    with session_scope() as session:
        contact = ContactRow(phone_e164="+6281200000001")
        sales = Channel(name="sales-number", kind="cloud", phone_number_id="111", team="sales")
        service = Channel(name="service-number", kind="cloud", phone_number_id="222", team="service")
        session.add_all([contact, sales, service])
        session.flush()

        def conversation_on(channel: Channel) -> ConversationRow:
            now = utcnow()
            row = ConversationRow(
                contact_id=contact.id, channel_id=channel.id, started_at=now, last_message_at=now
            )
            session.add(row)
            session.flush()
            return row

        assert assign(session, contact, conversation_on(sales)).agent == "ayu", "bayu is not in sales"
        assert assign(session, contact, conversation_on(service)).agent == "bayu", "ayu was assigned last"
