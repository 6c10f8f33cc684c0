"""The permission table: every route of the app has a rule (closed by default), each role gets
what the table says, and the team rule hides what lies outside the caller's teams."""

from __future__ import annotations

import pytest
from fastapi import HTTPException

from api import permissions
from api.auth import Principal, usable_admin_token
from api.permissions import ADMIN_ONLY, ALL_ROLES, ANYONE, OPEN, RULES, SUPERVISOR_UP, allowed
from domain.credentials import admin_token_problem, password_problem
from producers.app import create_app
from settings import Settings

STRONG = "unit-admin-token-Kq83mZxv0Lp2"
ROLES = {
    "admin": Principal("ana", "admin", None),
    "supervisor": Principal("sri", "supervisor", frozenset({"sales"})),
    "agent": Principal("ayu", "agent", frozenset({"sales"})),
    "anonymous": None,
}


def app_routes() -> list[tuple[str, str]]:
    return sorted(set(permissions.endpoints(create_app(Settings(admin_token=STRONG)).routes)))


def test_every_route_of_the_app_has_a_rule():
    assert len(app_routes()) > 40, "the walk found the included routers' routes"
    missing = [f"{method} {path}" for method, path in app_routes() if (method, path) not in RULES]
    assert not missing, "routes without a permission rule (add them to api/permissions.RULES):\n" + "\n".join(
        missing
    )


def test_a_route_without_a_rule_is_refused_for_everyone():
    for principal in ROLES.values():
        assert not allowed(permissions.rule_for("GET", "/api/not-in-the-table"), principal)


@pytest.mark.parametrize("route", app_routes(), ids=lambda r: f"{r[0]} {r[1]}")
def test_each_role_gets_what_the_table_says(route):
    rule = RULES[route]
    for name, principal in ROLES.items():
        if rule.roles == ANYONE:
            expected = True
        elif principal is None:
            expected = False
        else:
            expected = name in rule.roles
        assert allowed(rule, principal) is expected, f"{name} on {route}"


def test_only_admins_manage_channels_agents_faq_rules_and_broadcasts():
    admin_only = [
        ("POST", "/api/channels"),
        ("PATCH", "/api/channels/{channel_id}"),
        ("GET", "/api/channels"),
        ("GET", "/api/inbox"),
        ("POST", "/api/agents"),
        ("DELETE", "/api/agents/{login}"),
        ("PUT", "/api/faq/{key}"),
        ("DELETE", "/api/faq/{key}"),
        ("PUT", "/api/followup-rules"),
        ("POST", "/api/broadcasts"),
    ]
    assert all(RULES[r] is ADMIN_ONLY for r in admin_only)
    assert RULES[("POST", "/api/conversations/{conversation_id}/assignee")] is SUPERVISOR_UP
    assert RULES[("POST", "/api/routing-decisions/{decision_id}/override")] is SUPERVISOR_UP
    assert RULES[("POST", "/api/conversations/{conversation_id}/messages")] is ALL_ROLES
    assert RULES[("POST", "/api/auth/token")] is OPEN


def test_a_conversation_of_another_team_is_not_found(monkeypatch):
    """The team rule at unit level, with the conversation's team given: an agent of Sales does
    not see a Service conversation (404), an agent of both and an admin do."""
    monkeypatch.setattr(permissions, "conversation_team", lambda session, conversation_id: "Service")
    monkeypatch.setattr(permissions, "contact_teams", lambda session, contact_id: {"Service"})
    sales = Principal("ayu", "agent", frozenset({"Sales"}))
    both = Principal("budi", "agent", frozenset({"Sales", "Service"}))
    admin = Principal("ana", "admin", None)
    for check, subject in ((permissions.conversation_in_reach, 7), (permissions.contact_in_reach, 3)):
        with pytest.raises(HTTPException) as refused:
            check(None, sales, subject)
        assert refused.value.status_code == 404
        check(None, both, subject)
        check(None, admin, subject)
    assert not sales.sees_team("Service") and both.sees_team("Service") and admin.sees_team("Service")


@pytest.mark.parametrize(
    ("password", "rule"),
    [
        (None, "required"),
        ("short1", "at least 10 characters"),
        ("ayu.santoso", "login"),
        ("xayusantosox", "login"),
        ("Password123", "common"),
        ("aaaaaaaaaaaa", "common"),
    ],
)
def test_weak_passwords_are_refused_naming_the_rule(password, rule):
    problem = password_problem(password, "ayu.santoso")
    assert problem and problem.startswith("password:") and rule in problem


def test_a_good_password_passes():
    assert password_problem("kopi susu gula aren", "ayu") is None


@pytest.mark.parametrize(
    "token",
    [
        "change-me",
        "changeme",
        "CHANGE_ME",
        "secret",
        "short-token",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "password-password-password",
    ],
)
def test_weak_admin_tokens_are_refused_and_treated_as_unset(token, capsys):
    problem = admin_token_problem(token)
    assert problem and problem.startswith("ADMIN_TOKEN is refused")
    assert usable_admin_token(Settings(admin_token=token)) is None
    create_app(Settings(admin_token=token))  # the JSON log on stdout says so, at start
    assert '"level": "ERROR"' in (said := capsys.readouterr().out) and "ADMIN_TOKEN is refused" in said


def test_a_generated_admin_token_is_accepted():
    import secrets

    for _ in range(50):
        token = secrets.token_urlsafe(24)  # what ./run makes
        assert admin_token_problem(token) is None, token
        assert usable_admin_token(Settings(admin_token=token)) == token
