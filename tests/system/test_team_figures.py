"""The team's figures (GET /api/figures and its CSV) from conversations that really went through
the webhook, the workers and the (fake, real HTTP) Cloud API."""

from __future__ import annotations

import csv
import io

from testkit.processes import wait_for
from tests.system.test_routing import api, contact_of, faq, settled, team, write  # noqa: F401

SITI, ANDI, BUDI = "6285711112222", "6281398765432", "6281212345678"


def conversation_of(api, wa_id: str) -> dict:  # noqa: F811
    contact = contact_of(api, wa_id)
    [conversation] = api("GET", f"/api/contacts/{contact['id']}")["conversations"]
    return conversation


def test_figures_per_agent_channel_and_responder(client, api, faq, team, cloud_api, routing):  # noqa: F811
    write(client, SITI, "Halo kak, berapa harganya yang ukuran L?")  # hot: routed to ayu
    settled()  # the rotation gives the next agent to whichever is routed first: Siti
    write(client, ANDI, "mau order 2 pcs, ongkir ke Bandung berapa?")  # routed to bayu
    write(client, BUDI, "jam buka toko?")  # the FAQ answers
    settled()
    siti = conversation_of(api, SITI)
    api(
        "POST",
        f"/api/conversations/{siti['id']}/messages",
        202,
        json={"text": "Ukuran L Rp 150.000 kak"},
        headers={"Idempotency-Key": "siti-1"},
    )
    # The send is marked, then recorded in the conversation: wait for the record.
    wait_for(lambda: conversation_of(api, SITI)["first_responder"] == "human", 30, "Ayu's reply recorded")

    figures = api("GET", "/api/figures")
    agents = {row["key"]: row for row in figures["agents"]}
    assert agents["ayu"]["conversations"] == 1
    assert agents["ayu"]["first_response_median_seconds"] is not None
    assert agents["ayu"]["within_target_share"] == 1.0  # answered well inside the hot target
    assert agents["bayu"]["conversations"] == 1
    assert agents["bayu"]["first_response_median_seconds"] is None  # nobody answered Andi yet
    assert (agents["ayu"]["open_now"], agents["bayu"]["open_now"]) == (1, 1)
    assert agents["ayu"]["available"] is True
    # Rina (signed in for the ``api`` fixture) typed the reply to Ayu's customer: hers.
    assert (agents["rina"]["messages_sent"], agents["ayu"]["messages_sent"]) == (1, 0)
    [channel] = figures["channels"]
    assert (channel["key"], channel["conversations"]) == ("settings", 3)
    assert channel["messages_sent"] == 2  # the FAQ answer and Ayu's reply
    responders = {row["key"]: row["conversations"] for row in figures["responders"]}
    assert responders == {"human": 1, "automation": 1}
    assert figures["timezone"] and figures["since"] < figures["until"]

    sheet = client.get("/api/figures.csv", headers=_bearer(api))
    assert sheet.status_code == 200 and sheet.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(sheet.text)))
    ayu = next(r for r in rows if (r["group"], r["key"]) == ("agent", "ayu"))
    assert ayu["conversations"] == "1" and ayu["within_target_share"] == "1.0"
    assert {r["group"] for r in rows} == {"agent", "channel", "responder"}


def test_a_period_in_the_past_has_no_conversations_and_bad_periods_are_refused(api):  # noqa: F811
    empty = api("GET", "/api/figures", params={"since": "2020-01-01", "until": "2020-01-31"})
    assert empty["channels"] == [] and empty["responders"] == []
    wrong = api("GET", "/api/figures", 422, params={"since": "2020-02-01", "until": "2020-01-01"})
    assert "since" in str(wrong["detail"])
    too_long = api("GET", "/api/figures", 422, params={"since": "2020-01-01", "until": "2022-01-01"})
    assert "366 days" in str(too_long["detail"])


def test_agents_may_not_read_the_team_figures(client, admin_headers):
    account = {
        "login": "dewi",
        "name": "Dewi",
        "role": "agent",
        "teams": ["sales"],
        "password": "sate-ayam-madura-9",
    }
    assert client.post("/api/agents", json=account, headers=admin_headers).status_code == 201
    token = client.post("/api/auth/token", json={"login": "dewi", "password": "sate-ayam-madura-9"}).json()[
        "token"
    ]
    for path in ("/api/figures", "/api/figures.csv"):
        assert client.get(path, headers={"Authorization": f"Bearer {token}"}).status_code == 403
        assert client.get(path).status_code == 401


def _bearer(api) -> dict[str, str]:  # noqa: F811
    """The token the ``api`` fixture signs in with (Rina, an admin account)."""
    token = api("POST", "/api/auth/token", json={"login": "rina", "password": "nasi-goreng-pedas-7"})["token"]
    return {"Authorization": f"Bearer {token}"}
