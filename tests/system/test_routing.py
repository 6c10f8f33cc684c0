"""The automation brain end to end: webhook -> ingest -> routing worker -> outbox -> the (fake,
real HTTP) Cloud API, with people steering it through the control API. Real Redis, PostgreSQL,
Celery workers and, for follow-ups, a real beat."""

from __future__ import annotations

import os
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import redis
from sqlalchemy import func, select

from models import AdaptiveFollowup, InboxEvent, Message, OutboundMessage, RoutingDecision
from models.db import session_scope
from models.outbox import QUEUED, SENDING
from testkit import samples
from testkit.processes import CeleryProcess, wait_for
from tests.system.conftest import AI_ENV

BUDI, SITI, ANDI = "6281212345678", "6285711112222", "6281398765432"
OPENING_HOURS_ANSWER = "Toko kami buka Senin-Sabtu pukul 08.00-17.00. Ada lagi yang bisa kami bantu?"


RINA_PASSWORD = "nasi-goreng-pedas-7"


@pytest.fixture
def api(client, admin_headers):
    """Call the admin API signed in as Rina (an admin account); returns the JSON, asserting the
    expected status. Each call also claims to be someone else in X-Actor: the audit ignores it."""
    account = {"login": "rina", "name": "Rina", "role": "admin", "teams": [], "password": RINA_PASSWORD}
    assert client.post("/api/agents", json=account, headers=admin_headers).status_code == 201
    signed_in = client.post("/api/auth/token", json={"login": "rina", "password": RINA_PASSWORD})
    rina = {"Authorization": f"Bearer {signed_in.json()['token']}"}

    def call(method: str, path: str, status: int = 200, headers: dict | None = None, **kwargs):
        headers = {**rina, "X-Actor": "mallory", **(headers or {})}
        answer = client.request(method, path, headers=headers, **kwargs)
        assert answer.status_code == status, answer.text
        return answer.json() if answer.content else None

    return call


@pytest.fixture
def faq(api):
    api(
        "PUT",
        "/api/faq/opening_hours",
        json={
            "questions": ["jam buka toko", "toko buka jam berapa", "what are your opening hours"],
            "answer": OPENING_HOURS_ANSWER,
        },
    )


@pytest.fixture
def team(api):
    for login in ("ayu", "bayu"):
        api("PUT", f"/api/agents/{login}", json={"name": login.title(), "team": "sales"})


def write(client, wa_id: str, text: str, name: str = "Pelanggan", at: int | None = None) -> None:
    extra = {"timestamp": str(at)} if at is not None else {}
    body, headers = samples.encode(samples.inbound_text(wa_id, name, text, **extra))
    assert client.post("/webhooks/whatsapp", content=body, headers=headers).status_code == 200


def settled(timeout: float = 60) -> None:
    """Every inbox event processed, every inbound message routed (the AI agent done too), every
    outbox row finished."""

    def done() -> bool:
        with session_scope() as session:
            pending = session.scalar(select(func.count()).where(InboxEvent.state == "pending"))
            unsent = session.scalar(select(func.count()).where(OutboundMessage.state.in_((QUEUED, SENDING))))
            inbound = session.scalar(select(func.count()).where(Message.direction == "inbound"))
            decided = session.scalar(select(func.count()).where(RoutingDecision.state == "decided"))
        return pending == 0 and unsent == 0 and inbound == decided

    wait_for(done, timeout, "inbox processed, messages routed, outbox settled")


def contact_of(api, wa_id: str) -> dict:
    [contact] = api("GET", "/api/contacts", params={"phone": f"+{wa_id}"})["items"]
    return contact


def decisions(api, wa_id: str) -> list[dict]:
    """The contact's routing decisions, oldest first."""
    return list(reversed(api("GET", f"/api/contacts/{contact_of(api, wa_id)['id']}/routing")["items"]))


def sent_texts(cloud_api, wa_id: str) -> list[str]:
    return [
        body.get("text", {}).get("body")
        or (body["interactive"]["body"]["text"] if "interactive" in body else None)
        or f"template:{body['template']['name']}"
        for body in cloud_api.accepted
        if body["to"] == wa_id
    ]


def test_an_faq_question_is_answered_by_automation_whatever_the_spelling(
    client, api, faq, cloud_api, routing
):
    write(client, BUDI, "kak, jam brp toko bukaa?")
    settled()
    [decision] = decisions(api, BUDI)
    assert decision["responder"] == "automation"
    assert decision["faq_key"] == "opening_hours"
    assert any("opening_hours" in reason for reason in decision["reasons"])
    assert sent_texts(cloud_api, BUDI) == [OPENING_HOURS_ANSWER]
    detail = api("GET", f"/api/contacts/{contact_of(api, BUDI)['id']}")
    [conversation] = detail["conversations"]
    assert conversation["first_responder"] == "automation"
    assert conversation["awaiting_reply_since"] is None  # the answer counts as a reply


def test_a_price_question_from_a_new_number_is_hot_and_goes_to_the_next_agent(
    client, api, team, cloud_api, routing
):
    write(client, SITI, "Halo kak, berapa harganya yang ukuran L?")
    settled()
    contact = contact_of(api, SITI)
    assert contact["lead_class"] == "hot"
    assert any("price" in reason for reason in contact["lead_reasons"])
    assert contact["assigned_agent"] == "ayu"  # first in the rotation: never assigned yet
    [decision] = decisions(api, SITI)
    assert (decision["responder"], decision["agent"], decision["lead_class"]) == ("human", "ayu", "hot")
    assert decision["respond_by"] is not None
    assert sent_texts(cloud_api, SITI) == []  # no FAQ, no AI: a person answers
    assert [c["id"] for c in api("GET", "/api/contacts", params={"lead_class": "hot"})["items"]] == [
        contact["id"]
    ]
    [waiting] = api("GET", "/api/queue")["items"]
    assert waiting["id"] == decision["id"]

    # The next new lead goes to the next agent.
    write(client, ANDI, "mau order 2 pcs, ongkir ke Bandung berapa?")
    settled()
    assert contact_of(api, ANDI)["assigned_agent"] == "bayu"


def test_a_returning_customer_goes_to_the_same_agent_unless_they_are_away(client, api, team, routing):
    write(client, BUDI, "Halo, saya mau tanya produk")
    settled()
    write(client, SITI, "Halo, mau tanya juga")
    settled()
    assert contact_of(api, BUDI)["assigned_agent"] == "ayu"
    assert contact_of(api, SITI)["assigned_agent"] == "bayu"

    write(client, BUDI, "Saya kembali lagi, ada model baru?")
    settled()
    assert [d["agent"] for d in decisions(api, BUDI)] == ["ayu", "ayu"]
    assert "already looks after" in decisions(api, BUDI)[-1]["reasons"][-1]

    api("PUT", "/api/agents/ayu", json={"name": "Ayu", "team": "sales", "available": False})
    write(client, BUDI, "Halo? Ada orang?")
    settled()
    latest = decisions(api, BUDI)[-1]
    assert latest["agent"] == "bayu"
    assert "ayu is unavailable" in latest["reasons"][-1]


def test_thanks_and_a_thumbs_up_get_no_reply(client, api, faq, cloud_api, routing):
    write(client, BUDI, "jam buka toko?")
    settled()
    write(client, BUDI, "oke makasih kak 🙏")
    write(client, BUDI, "👍")
    settled()
    assert [d["needs_reply"] for d in decisions(api, BUDI)] == [True, False, False]
    assert decisions(api, BUDI)[1]["responder"] == "none"
    assert sent_texts(cloud_api, BUDI) == [OPENING_HOURS_ANSWER]  # the FAQ answer only
    [conversation] = api("GET", f"/api/contacts/{contact_of(api, BUDI)['id']}")["conversations"]
    assert conversation["closed_reason"] == "the customer said thanks or goodbye"


def test_a_paused_contact_gets_nothing_automatic(client, admin_headers, api, faq, team, cloud_api, routing):
    write(client, BUDI, "Halo")
    settled()
    contact_id = contact_of(api, BUDI)["id"]
    answer = api("POST", f"/api/contacts/{contact_id}/automation", json={"paused": True})
    assert answer["automation_paused"] is True
    cloud_api.reset()

    write(client, BUDI, "jam buka toko?")
    body, headers = samples.encode(samples.order_event("order.created", phone="0812-1234-5678"))
    assert client.post("/webhooks/orders", content=body, headers=headers).status_code == 202
    settled()
    assert sent_texts(cloud_api, BUDI) == []
    latest = decisions(api, BUDI)[-1]
    assert latest["responder"] == "human"
    assert "automation is paused for this contact" in latest["reasons"]
    order = client.get("/api/orders/SO-1001", headers=admin_headers).json()
    assert {m["status"] for m in order["messages"]} == {"cancelled"}
    assert contact_of(api, BUDI)["automation_paused"] is True
    [entry] = api("GET", "/api/audit", params={"subject": f"contact:{contact_id}"})["items"]
    assert (entry["actor"], entry["action"]) == ("rina", "automation.paused")

    api("POST", f"/api/contacts/{contact_id}/automation", json={"paused": False})
    write(client, BUDI, "toko buka jam berapa")
    settled()
    assert sent_texts(cloud_api, BUDI) == [OPENING_HOURS_ANSWER]


def test_a_human_take_over_stops_automation_in_that_conversation(client, api, faq, team, cloud_api, routing):
    write(client, BUDI, "jam buka toko?")
    settled()
    [conversation] = api("GET", f"/api/contacts/{contact_of(api, BUDI)['id']}")["conversations"]
    taken = api("POST", f"/api/conversations/{conversation['id']}/assignee", json={"agent": "bayu"})
    assert taken["owner_agent"] == "bayu"

    write(client, BUDI, "toko buka jam berapa hari ini?")
    settled()
    latest = decisions(api, BUDI)[-1]
    assert (latest["responder"], latest["agent"]) == ("human", "bayu")
    assert "bayu took over this conversation" in latest["reasons"]
    assert sent_texts(cloud_api, BUDI) == [OPENING_HOURS_ANSWER]  # only the answer before the take-over
    assert contact_of(api, BUDI)["assigned_agent"] == "bayu"
    [entry] = api("GET", "/api/audit", params={"subject": f"conversation:{conversation['id']}"})["items"]
    assert (entry["actor"], entry["action"], entry["details"]["agent"]) == (
        "rina",
        "conversation.taken_over",
        "bayu",
    )

    assert api(
        "POST", f"/api/conversations/{conversation['id']}/assignee", status=422, json={"agent": "nobody"}
    )


def test_an_adaptive_follow_up_comes_after_silence_and_not_after_thanks(client, api, faq, cloud_api, routing):
    api(
        "PUT",
        "/api/followup-rules",
        json={"min_delay_seconds": 2, "max_delay_seconds": 3, "max_attempts": 1},
    )
    write(client, BUDI, "jam buka toko?")  # Budi asks twice, then goes quiet
    write(client, SITI, "toko buka jam berapa?")
    settled()
    write(client, BUDI, "toko buka jam berapa kak?")
    settled()
    write(client, SITI, "terima kasih kak")  # Siti answers: the conversation ended
    settled()

    beat = CeleryProcess.beat(ADAPTIVE_FOLLOWUP_TICK_SECONDS="0.5")
    try:
        wait_for(lambda: len(sent_texts(cloud_api, BUDI)) == 3, 60, "Budi's follow-up")
        time.sleep(4)  # time enough for a second follow-up, or one to Siti, were either allowed
    finally:
        beat.stop()
    settled()
    # One nudge after the last answer: the first answer's follow-up gave way to the second's.
    assert sent_texts(cloud_api, BUDI) == [
        OPENING_HOURS_ANSWER,
        OPENING_HOURS_ANSWER,
        "Halo Pelanggan, apakah masih ada yang ingin ditanyakan? Kami siap membantu.",
    ]
    assert sent_texts(cloud_api, SITI) == [OPENING_HOURS_ANSWER]
    with session_scope() as session:
        rows = session.scalars(select(AdaptiveFollowup)).all()
        reasons = sorted(row.reason or row.state for row in rows)
    assert reasons == ["queued", "the customer answered", "the customer answered"]


def test_follow_up_rules_are_validated_and_audited(api):
    assert api("GET", "/api/followup-rules")["scope"] == "settings"
    problem = api(
        "PUT",
        "/api/followup-rules",
        status=422,
        json={"min_delay_seconds": 10, "max_delay_seconds": 5, "max_attempts": 1},
    )
    assert "min_delay_seconds" in str(problem)
    api(
        "PUT",
        "/api/followup-rules",
        json={"min_delay_seconds": 60, "max_delay_seconds": 600, "max_attempts": 3},
    )
    assert api("GET", "/api/followup-rules")["max_attempts"] == 3
    [entry] = api("GET", "/api/audit", params={"subject": "default"})["items"]
    assert (entry["actor"], entry["action"]) == ("rina", "followup_rules.changed")


def test_the_ai_agent_answers_when_nothing_else_fits(client, api, team, cloud_api, routing, llm):
    routing.use(**AI_ENV)
    llm.answer_with(reply="Bisa kak, kami kirim ke seluruh Indonesia.", confidence=0.95)
    write(client, BUDI, "bisa kirim ke Papua?")
    settled()
    [decision] = decisions(api, BUDI)
    assert decision["responder"] == "ai"
    assert "the AI agent answered (confidence 0.95)" in decision["reasons"]
    assert sent_texts(cloud_api, BUDI) == ["Bisa kak, kami kirim ke seluruh Indonesia."]
    request = llm.messages()
    assert request[-1] == {"role": "user", "content": "bisa kirim ke Papua?"}


@pytest.mark.parametrize(
    ("script", "why"),
    [
        (lambda llm: llm.fail_next(500), "HTTP 500"),
        (lambda llm: llm.delay_next(5), "timed out"),
        (lambda llm: llm.answer_with(reply="Mungkin?", confidence=0.2), "confidence 0.20"),
    ],
    ids=["down", "too-slow", "unsure"],
)
def test_when_the_ai_agent_cannot_answer_a_human_does(
    client, api, team, cloud_api, routing, llm, script, why
):
    routing.use(**AI_ENV)
    script(llm)
    write(client, BUDI, "bisa kirim ke Papua?")
    settled()
    [decision] = decisions(api, BUDI)
    assert (decision["responder"], decision["agent"]) == ("human", "ayu")
    assert any(why in reason and "a human answers" in reason for reason in decision["reasons"])
    assert sent_texts(cloud_api, BUDI) == []


def test_a_person_overriding_a_pending_ai_answer_stops_it(client, api, team, cloud_api, routing, llm):
    routing.use(**AI_ENV)
    llm.delay_next(1.5)  # the model answers, but slowly (inside AI_TIMEOUT_SECONDS)
    write(client, BUDI, "bisa kirim ke Papua?")
    pending = wait_for(lambda: _first_decision(api, BUDI), 30, "the decision")
    assert pending["state"] == "ai_pending"
    api("POST", f"/api/routing-decisions/{pending['id']}/override", json={"responder": "none"})
    settled()
    time.sleep(3)  # the model's slow answer (or the AI task finding the decision made) comes and goes
    settled()
    [decision] = decisions(api, BUDI)
    assert (decision["responder"], decision["overridden_by"]) == ("none", "rina")
    assert sent_texts(cloud_api, BUDI) == []


def test_the_sweeper_routes_a_message_whose_routing_task_was_lost(client, api, faq, cloud_api, routing):
    routing.stop()
    write(client, BUDI, "jam buka toko?")
    broker = redis.Redis.from_url(os.environ["CELERY_BROKER_URL"])
    wait_for(lambda: _pending_inbox() == 0 and broker.llen("routing") == 1, 60, "the routing task queued")
    assert broker.delete("routing") == 1  # the routing task is lost
    routing.use()
    beat = CeleryProcess.beat()
    try:
        settled()
    finally:
        beat.stop()
    assert decisions(api, BUDI)[0]["responder"] == "automation"
    assert sent_texts(cloud_api, BUDI) == [OPENING_HOURS_ANSWER]


def _first_decision(api, wa_id: str) -> dict | None:
    if not api("GET", "/api/contacts", params={"phone": f"+{wa_id}"})["items"]:
        return None  # not ingested yet
    return (decisions(api, wa_id) or [None])[0]


def _pending_inbox() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).where(InboxEvent.state == "pending"))


def _a_closed_moment() -> int:
    """A recent moment outside 08:00-17:00 in Jakarta: a minute ago at night, else 07:00 today
    (at most ten hours ago, well inside the day after which routing no longer answers)."""
    jakarta = datetime.now(ZoneInfo("Asia/Jakarta"))
    if not 8 <= jakarta.hour < 17:
        return int(jakarta.timestamp()) - 60
    return int(jakarta.replace(hour=7, minute=0, second=0, microsecond=0).timestamp())


def test_out_of_hours_reply_is_sent_once_per_conversation(client, api, team, cloud_api, routing):
    routing.use(BUSINESS_HOURS="mon-sun 08:00-17:00")
    night = _a_closed_moment()
    write(client, BUDI, "Halo, masih buka?", at=night)
    write(client, BUDI, "Mau tanya harga", at=night + 30)
    settled()
    texts = sent_texts(cloud_api, BUDI)
    assert len(texts) == 1 and "di luar jam operasional" in texts[0]
    assert [d["out_of_hours"] for d in decisions(api, BUDI)] == [True, True]
    assert "already sent in this conversation" in " ".join(decisions(api, BUDI)[1]["reasons"])


def test_satisfaction_survey_at_the_close_and_journey_metrics(client, api, faq, cloud_api, routing):
    routing.use(SURVEY_ENABLED="true")
    write(client, BUDI, "jam buka toko?")
    settled()
    write(client, BUDI, "makasih ya kak")
    settled()
    # On a Cloud API number the survey is a list of ratings (templates/automation.toml [survey_list]).
    survey = [body for body in cloud_api.accepted if body["to"] == BUDI][-1]
    assert survey["type"] == "interactive" and survey["interactive"]["type"] == "list"
    assert "Seberapa puas" in survey["interactive"]["body"]["text"]
    rows = survey["interactive"]["action"]["sections"][0]["rows"]
    assert [row["id"] for row in rows] == [f"rating:{n}" for n in range(1, 6)]
    chosen = {"type": "list_reply", "list_reply": {"id": "rating:5", "title": rows[4]["title"]}}
    answer = samples.message(BUDI, "interactive", interactive=chosen)
    body, headers = samples.encode(
        samples.envelope(messages=[answer], contacts=[samples.profile(BUDI, "Budi")])
    )
    assert client.post("/webhooks/whatsapp", content=body, headers=headers).status_code == 200
    settled()
    assert (
        decisions(api, BUDI)[-1]["reasons"][-1]
        == "no reply needed: an answer to the satisfaction survey: 5/5"
    )
    assert len(sent_texts(cloud_api, BUDI)) == 2  # the answer and the survey; nothing after the rating

    journey = api("GET", "/api/journey")
    assert journey["conversations"] == 1
    assert (journey["closed"], journey["closed_within_24h"]) == (1, 1)
    [first] = journey["first_response"]
    assert (first["responder"], first["conversations"]) == ("automation", 1)
    assert journey["survey"] == {"sent": 1, "answered": 1, "average_rating": 5.0, "ratings": {"5": 1}}


def test_a_person_overrides_a_routing_decision(client, api, faq, team, cloud_api, routing):
    write(client, BUDI, "Halo, mau tanya")
    settled()
    [decision] = decisions(api, BUDI)
    changed = api(
        "POST",
        f"/api/routing-decisions/{decision['id']}/override",
        json={"responder": "automation", "faq_key": "opening_hours", "reason": "he asked on the phone"},
    )
    assert (changed["responder"], changed["overridden_by"]) == ("automation", "rina")
    settled()
    assert sent_texts(cloud_api, BUDI) == [OPENING_HOURS_ANSWER]
    [entry] = api("GET", "/api/audit", params={"subject": f"routing_decision:{decision['id']}"})["items"]
    assert entry["details"]["before"]["responder"] == "human"
    assert api(
        "POST",
        f"/api/routing-decisions/{decision['id']}/override",
        status=422,
        json={"responder": "automation"},
    )


def test_faq_entries_are_validated_and_imported_from_the_file(api, tmp_path):
    problem = api("PUT", "/api/faq/price", status=422, json={"questions": [], "answer": "Rp100.000"})
    assert "questions" in str(problem)
    before = [e for e in api("GET", "/api/audit")["items"] if e["action"] != "agent.created"]
    assert api("GET", "/api/faq") == [] and before == []

    from cli import faq as faq_cli
    from settings import settings

    assert faq_cli.import_file(settings.automation_file) == 4
    keys = [entry["key"] for entry in api("GET", "/api/faq")]
    assert keys == ["catalogue", "opening_hours", "payment_methods", "store_address"]
    exported = tmp_path / "faq.toml"
    exported.write_text(faq_cli.export())
    api("DELETE", "/api/faq/catalogue", status=204)
    assert faq_cli.import_file(exported) == 4  # the export reads back as the same entries
    assert len(api("GET", "/api/faq")) == 4
