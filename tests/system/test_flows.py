"""The WhatsApp Flows data endpoint on the real app and PostgreSQL: requests encrypted as Meta
encrypts them, answers read as Meta reads them, and what customers answered kept per contact."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import date

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from domain.flow_encryption import decrypt_response, encrypt_request
from domain.flow_tokens import make_token, token_key
from models import Contact, FlowAnswer, Order
from models.db import session_scope

SECRET = "flows-app-secret"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
SIGNING = token_key(
    KEY.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
)


@pytest.fixture
def flows(make_client):
    return make_client(whatsapp_flows_private_key=PEM, whatsapp_app_secret=SECRET)


def contact(name: str | None = "Budi WA") -> int:
    with session_scope() as session:
        person = Contact(name=name, phone_e164="+6281200000001")
        session.add(person)
        session.flush()
        return person.id


def call(client, flow: str, payload: dict, *, secret: str = SECRET, public_key=None):
    body, aes_key, iv = encrypt_request(payload, public_key or KEY.public_key())
    raw = json.dumps(body).encode()
    signature = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    answer = client.post(f"/flows/{flow}", content=raw, headers={"X-Hub-Signature-256": signature})
    opened = decrypt_response(answer.text, aes_key, iv) if answer.status_code in (200, 427) else None
    return answer, opened


def answers() -> list[tuple[str, str, dict]]:
    with session_scope() as session:
        rows = session.scalars(select(FlowAnswer).order_by(FlowAnswer.id))
        return [(row.flow, row.screen, row.answers) for row in rows]


def test_ping_is_answered_active(flows):
    answer, opened = call(flows, "survey", {"version": "3.0", "action": "ping"})
    assert answer.status_code == 200
    assert opened == {"data": {"status": "active"}}


def test_the_lead_form_opens_with_the_profile_name_and_its_answer_becomes_the_contact(flows):
    person = contact("budi wa profile")
    token = make_token(SIGNING, "lead_form", person)
    _, opened = call(flows, "lead_form", {"version": "3.0", "action": "INIT", "flow_token": token})
    assert opened["screen"] == "LEAD"
    assert opened["data"]["name"] == "budi wa profile"

    submit = {
        "version": "3.0",
        "action": "data_exchange",
        "screen": "LEAD",
        "flow_token": token,
        "data": {"name": "Budi Santoso", "city": "Bandung", "interest": "reseller", "injected": "x"},
    }
    _, opened = call(flows, "lead_form", submit)
    assert opened == {
        "version": "3.0",
        "screen": "SUCCESS",
        "data": {"extension_message_response": {"params": {"flow_token": token}}},
    }
    call(flows, "lead_form", submit)  # Meta repeats a request: still one answer
    assert answers() == [
        ("lead_form", "LEAD", {"name": "Budi Santoso", "city": "Bandung", "interest": "reseller"})
    ]
    with session_scope() as session:
        assert session.get(Contact, person).name == "Budi Santoso"


def test_a_lead_form_without_a_name_shows_the_screen_again_and_keeps_nothing(flows):
    token = make_token(SIGNING, "lead_form", contact())
    payload = {
        "action": "data_exchange",
        "screen": "LEAD",
        "flow_token": token,
        "data": {"interest": "harga"},
    }
    _, opened = call(flows, "lead_form", {"version": "3.0", **payload})
    assert opened["screen"] == "LEAD"
    assert "Nama" in opened["data"]["error_message"]
    assert answers() == []


def test_order_status_shows_the_customers_own_order_and_nobody_elses(flows):
    budi, siti = contact(), contact("Siti")
    with session_scope() as session:
        session.add(
            Order(
                external_id="INV-77",
                contact_id=budi,
                stage="shipped",
                courier="JNE",
                tracking_number="JNE0001",
                estimated_delivery_date=date(2026, 12, 9),
            )
        )
        session.add(Order(external_id="INV-88", contact_id=siti, stage="paid", tracking_number="SECRET-88"))
    token = make_token(SIGNING, "order_status", budi)
    _, opened = call(flows, "order_status", {"version": "3.0", "action": "INIT", "flow_token": token})
    assert opened == {"version": "3.0", "screen": "LOOKUP", "data": {"order_id": "INV-77"}}

    lookup = {"version": "3.0", "action": "data_exchange", "screen": "LOOKUP", "flow_token": token}
    _, opened = call(flows, "order_status", {**lookup, "data": {"order_id": "INV-77"}})
    assert opened["screen"] == "STATUS"
    assert opened["data"]["tracking_number"] == "JNE0001"
    assert opened["data"]["estimated_delivery"] == "2026-12-09"
    assert "Shipped" in opened["data"]["stage"]

    _, opened = call(flows, "order_status", {**lookup, "data": {"order_id": "INV-88"}})
    assert opened["screen"] == "LOOKUP"
    assert "SECRET-88" not in json.dumps(opened)
    assert "tidak ditemukan" in opened["data"]["error_message"]


def test_the_survey_keeps_a_rating_of_one_to_five_stars(flows):
    token = make_token(SIGNING, "survey", contact())
    _, opened = call(flows, "survey", {"version": "3.0", "action": "INIT", "flow_token": token})
    assert [choice["id"] for choice in opened["data"]["ratings"]] == ["5", "4", "3", "2", "1"]
    rate = {"version": "3.0", "action": "data_exchange", "screen": "RATE", "flow_token": token}
    _, opened = call(flows, "survey", {**rate, "data": {"rating": "9"}})
    assert "error_message" in opened["data"]
    _, opened = call(flows, "survey", {**rate, "data": {"rating": "4", "comment": "Cepat sampai"}})
    assert opened["screen"] == "SUCCESS"
    assert answers() == [("survey", "RATE", {"rating": 4, "comment": "Cepat sampai"})]


def test_a_token_not_ours_or_for_another_flow_closes_the_flow_with_427(flows):
    person = contact()
    forged = make_token(b"not our key" * 3, "survey", person)
    for token in (forged, make_token(SIGNING, "lead_form", person), "unused", None):
        payload = {"version": "3.0", "action": "INIT", "flow_token": token}
        answer, opened = call(flows, "survey", payload)
        assert answer.status_code == 427
        assert opened == {"error_msg": "The message is no longer available"}


def test_bad_signature_is_432_and_undecryptable_is_421_and_nothing_is_kept(flows):
    token = make_token(SIGNING, "survey", contact())
    submit = {"action": "data_exchange", "screen": "RATE", "flow_token": token, "data": {"rating": "5"}}
    answer, _ = call(flows, "survey", submit, secret="guessed")
    assert answer.status_code == 432
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    answer, _ = call(flows, "survey", submit, public_key=other.public_key())
    assert answer.status_code == 421
    assert answers() == []


def test_error_notifications_are_acknowledged(flows):
    token = make_token(SIGNING, "lead_form", contact())
    payload = {"version": "3.0", "action": "data_exchange", "screen": "LEAD", "flow_token": token}
    _, opened = call(flows, "lead_form", {**payload, "data": {"error": "bad_screen", "error_message": "x"}})
    assert opened == {"version": "3.0", "data": {"acknowledged": True}}
    assert answers() == []


def test_closed_until_the_private_key_is_set_and_unknown_flows_are_404(make_client, flows):
    closed = make_client(whatsapp_app_secret=SECRET)
    answer = closed.post("/flows/survey", json={})
    assert answer.status_code == 503
    assert "WHATSAPP_FLOWS_PRIVATE_KEY" in answer.json()["error"]
    answer = flows.post("/flows/nope", json={})
    assert answer.status_code == 404
    assert "lead_form" in answer.json()["error"]


def test_the_api_lists_each_flow_with_its_endpoint_and_its_flow_json(client, admin_headers):
    assert client.get("/api/flows").status_code == 401
    listed = client.get("/api/flows", headers=admin_headers).json()
    assert [flow["name"] for flow in listed] == ["lead_form", "order_status", "survey"]
    assert listed[0]["endpoint"] == "/flows/lead_form"
    definition = client.get("/api/flows/survey", headers=admin_headers).json()
    assert [screen["id"] for screen in definition["screens"]] == ["RATE"]
    assert client.get("/api/flows/nope", headers=admin_headers).status_code == 404
