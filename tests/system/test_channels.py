"""Several WhatsApp numbers in one install: two Cloud API channels and one WAHA channel.

Real PostgreSQL, Redis and Celery worker; the gateways are the fakes of testkit/ (the shared fake
Cloud API learns the two numbers' tokens for these tests, a fake WAHA serves the WAHA channel).
A message to each number lands in a conversation of its own, is assigned within that number's
team, and the reply leaves through that number. A webhook signed for one channel but addressed
to another is refused; one for an unknown or disabled number is acknowledged, kept as
``unknown_channel``, listed and counted, never processed. Secrets never come back from the API,
never reach a log, and are not in the database in clear.
"""

from __future__ import annotations

import copy
import json

import pytest
from sqlalchemy import func, select, text

from models import Channel, Conversation, InboxEvent, OutboundMessage
from models.db import session_scope
from models.secret_box import decrypt
from testkit import samples
from testkit.fakes.waha import FakeWaha
from testkit.processes import wait_for

from .test_accounts import PASSWORD, add, token_of

BUDI = "6281212345678"
SETTINGS_SECRETS = {"whatsapp_app_secret": "settings-app-secret", "waha_hmac_key": "settings-waha-key"}
A = {
    "name": "toko-jakarta",
    "kind": "cloud",
    "phone_number_id": "1100000000001",
    "waba_id": "WABA-1",
    "access_token": "token-of-jakarta",
    "app_secret": "app-secret-of-jakarta",
    "display_phone": "+62 811 0000 0001",
    "team": "jakarta",
}
B = {
    "name": "toko-bandung",
    "kind": "cloud",
    "phone_number_id": "1100000000002",
    "waba_id": "WABA-1",
    "access_token": "token-of-bandung",
    "app_secret": "app-secret-of-bandung",
    "team": "bandung",
}
W = {
    "name": "toko-surabaya",
    "kind": "waha",
    "session": "surabaya",
    "api_key": "waha-api-key-of-surabaya",
    "hmac_key": "waha-hmac-of-surabaya",
    "team": "surabaya",
}
SECRETS = [
    A["access_token"],
    A["app_secret"],
    B["access_token"],
    B["app_secret"],
    W["api_key"],
    W["hmac_key"],
]


@pytest.fixture
def waha():
    with FakeWaha(api_key=W["api_key"]) as fake:
        yield fake


@pytest.fixture
def numbers(cloud_api):
    """The shared fake Cloud API answers for the settings number and for A's and B's."""
    cloud_api.numbers = {
        cloud_api.phone_number_id: cloud_api.access_token,
        A["phone_number_id"]: A["access_token"],
        B["phone_number_id"]: B["access_token"],
    }
    yield cloud_api
    cloud_api.numbers = None


@pytest.fixture
def api(make_client):
    return make_client(development_mode=False, **SETTINGS_SECRETS)


@pytest.fixture
def three(api, admin_headers, waha, numbers):
    """The three channels and an agent in each one's team (and one in the default team)."""
    created = {}
    for spec in (A, B, {**W, "waha_url": waha.url}):
        answer = api.post("/api/channels", json=spec, headers=admin_headers)
        assert answer.status_code == 201, answer.text
        created[spec["name"]] = answer.json()
    for login, team in (("ayu", "jakarta"), ("bayu", "bandung"), ("citra", "surabaya"), ("dewi", "sales")):
        assert api.put(f"/api/agents/{login}", json={"team": team}, headers=admin_headers).status_code == 200
    return created


def cloud_post(api, pnid: str, secret: str | None, body_text: str, wa_id: str = BUDI, **extra):
    payload = samples.envelope(
        messages=[samples.text(wa_id, body_text, **extra)], contacts=[samples.profile(wa_id, "Budi")]
    )
    payload["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = pnid
    body, headers = samples.encode(payload, secret)
    return api.post("/webhooks/whatsapp", content=body, headers=headers)


def waha_post(api, session: str, key: str | None, body_text: str, chat: str = f"{BUDI}@c.us"):
    body, headers = samples.waha_encode(samples.waha_message(chat, body_text, session=session), key)
    return api.post("/webhooks/waha", content=body, headers=headers)


def inbox_count(state: str | None = None) -> int:
    with session_scope() as session:
        query = select(func.count()).select_from(InboxEvent)
        if state:
            query = query.where(InboxEvent.state == state)
        return session.scalar(query)


def contact_detail(api, admin_headers) -> dict:
    found = api.get("/api/contacts", params={"phone": BUDI}, headers=admin_headers).json()["items"]
    assert len(found) == 1, found  # one person across the three numbers
    return api.get(f"/api/contacts/{found[0]['id']}", headers=admin_headers).json()


def test_three_channels_keep_their_own_conversations_teams_and_numbers(
    api, admin_headers, three, numbers, waha, worker, drained
):
    assert cloud_post(api, A["phone_number_id"], A["app_secret"], "Halo, berapa harganya?").status_code == 200
    assert cloud_post(api, B["phone_number_id"], B["app_secret"], "Kak, stoknya ada?").status_code == 200
    assert waha_post(api, W["session"], W["hmac_key"], "Bisa kirim ke Surabaya?").status_code == 200
    drained()

    def conversations():
        detail = contact_detail(api, admin_headers)
        by_channel = {c["channel"]: c for c in detail["conversations"]}
        return (
            by_channel
            if len(by_channel) == 3 and all(c["assigned_agent"] for c in by_channel.values())
            else None
        )

    by_channel = wait_for(conversations, 30, "three conversations, each assigned")
    # Round robin within each channel's team.
    assert {name: c["assigned_agent"] for name, c in by_channel.items()} == {
        A["name"]: "ayu",
        B["name"]: "bayu",
        W["name"]: "citra",
    }
    detail = contact_detail(api, admin_headers)
    messages = api.get(f"/api/contacts/{detail['id']}/messages", headers=admin_headers).json()["items"]
    assert sorted(m["channel"] for m in messages) == sorted([A["name"], B["name"], W["name"]])

    # A second message on A stays in A's conversation and with A's agent.
    assert cloud_post(api, A["phone_number_id"], A["app_secret"], "Ada warna merah?").status_code == 200
    drained()
    again = wait_for(
        lambda: (
            (c := {x["channel"]: x for x in contact_detail(api, admin_headers)["conversations"]})
            and c[A["name"]]["message_count"] == 2
            and c
        ),
        30,
        "the second message in A's conversation",
    )
    assert again[A["name"]]["id"] == by_channel[A["name"]]["id"]
    assert len(again) == 3

    # Replies leave through the number of the conversation they answer.
    for name, reply in (
        (A["name"], "dari Jakarta"),
        (B["name"], "dari Bandung"),
        (W["name"], "dari Surabaya"),
    ):
        answer = api.post(
            f"/api/conversations/{by_channel[name]['id']}/messages",
            json={"text": reply},
            headers={**admin_headers, "Idempotency-Key": f"reply-{name}"},
        )
        assert answer.status_code == 202, answer.text
    wait_for(lambda: len(numbers.sent_from) >= 2 and len(waha.accepted) >= 1, 30, "the replies sent")
    sent = {(number, body["text"]["body"]) for number, body in numbers.sent_bodies}
    assert sent == {(A["phone_number_id"], "dari Jakarta"), (B["phone_number_id"], "dari Bandung")}
    assert [(body["session"], body["text"], body["chatId"]) for body in waha.accepted] == [
        (W["session"], "dari Surabaya", f"{BUDI}@c.us")
    ]

    def outbox() -> list[tuple[str, str]]:
        with session_scope() as session:
            rows = session.execute(select(OutboundMessage.gateway, OutboundMessage.state))
            return sorted((gateway, state) for gateway, state in rows)

    # The gateway may have the message a moment before the worker has recorded it as sent.
    wait_for(lambda: all(state == "sent" for _, state in outbox()), 30, "the replies recorded as sent")
    assert outbox() == [("cloud", "sent"), ("cloud", "sent"), ("waha", "sent")]
    # The sent messages joined their own conversations.
    final = {c["channel"]: c for c in contact_detail(api, admin_headers)["conversations"]}
    assert len(final) == 3 and all(c["last_outbound_at"] for c in final.values())


def test_order_events_name_their_channel(make_client, admin_headers, three, numbers, worker, drained):
    orders = make_client(development_mode=True)
    event = samples.order_event("order.created", "SO-CH-1", phone="0812-1234-5678")
    event["channel"] = B["name"]
    assert orders.post("/webhooks/orders", json=event).status_code == 202
    drained()
    wait_for(lambda: numbers.sent_from, 30, "the order message sent")
    assert {number for number, _ in numbers.sent_from} == {B["phone_number_id"]}

    unknown = samples.order_event("order.created", "SO-CH-2", phone="0812-1234-5678")
    unknown["channel"] = "toko-medan"
    refused = orders.post("/webhooks/orders", json=unknown)
    assert refused.status_code == 422
    assert "channel" in refused.text and "toko-medan" in refused.text
    with session_scope() as session:
        assert (
            session.scalar(
                select(func.count()).select_from(InboxEvent).where(InboxEvent.kind == "order.created")
            )
            == 1
        )

    # Without a channel: the default one (the settings channel until a stored one is marked default).
    plain = samples.order_event("order.created", "SO-CH-3", phone="0813-9999-0000", contact_id="C-43")
    assert orders.post("/webhooks/orders", json=plain).status_code == 202
    drained()
    wait_for(lambda: len(numbers.sent_from) >= 2, 30, "the second order message sent")
    assert numbers.sent_from[-1][0] == numbers.phone_number_id


def test_a_webhook_signed_for_one_channel_but_addressed_to_another_is_refused(api, three):
    before = inbox_count()
    refused = cloud_post(api, B["phone_number_id"], A["app_secret"], "Halo")
    assert refused.status_code == 401
    assert cloud_post(api, A["phone_number_id"], None, "Halo").status_code == 401
    assert (
        cloud_post(api, A["phone_number_id"], SETTINGS_SECRETS["whatsapp_app_secret"], "Halo").status_code
        == 401
    )
    assert waha_post(api, W["session"], A["app_secret"], "Halo").status_code == 401
    assert waha_post(api, W["session"], SETTINGS_SECRETS["waha_hmac_key"], "Halo").status_code == 401
    # Two changes in one body, for A and for B, signed with A's secret only: refused whole.
    payload = samples.envelope(messages=[samples.text(BUDI, "x")])
    change = payload["entry"][0]["changes"][0]
    change["value"]["metadata"]["phone_number_id"] = A["phone_number_id"]
    other = copy.deepcopy(change)
    other["value"]["metadata"]["phone_number_id"] = B["phone_number_id"]
    other["value"]["messages"] = [samples.text(BUDI, "y")]
    payload["entry"][0]["changes"].append(other)
    body, headers = samples.encode(payload, A["app_secret"])
    assert api.post("/webhooks/whatsapp", content=body, headers=headers).status_code == 401
    assert inbox_count() == before
    # Each signed with its own secret: accepted.
    assert cloud_post(api, B["phone_number_id"], B["app_secret"], "Halo").json()["accepted"] == 1
    assert waha_post(api, W["session"], W["hmac_key"], "Halo").json()["accepted"] == 1


def test_unknown_and_disabled_channels_are_acknowledged_kept_listed_and_never_processed(
    api, admin_headers, three, worker, drained
):
    unknown = cloud_post(api, "1199999999999", A["app_secret"], "Nomor siapa ini?")
    assert unknown.status_code == 200
    assert unknown.json() == {"accepted": 0, "duplicates": 0, "unknown_channel": 1}
    # Unknown but unsigned, or signed with no secret we know: refused, nothing kept.
    assert cloud_post(api, "1199999999999", None, "x").status_code == 401
    assert cloud_post(api, "1199999999999", "guessed", "x").status_code == 401
    assert waha_post(api, "no-such-session", W["hmac_key"], "Halo").status_code == 200

    # Disabled: its events are kept as unknown_channel too.
    disabled = api.patch(
        f"/api/channels/{three[B['name']]['id']}", json={"enabled": False}, headers=admin_headers
    )
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False
    assert cloud_post(api, B["phone_number_id"], B["app_secret"], "Halo?").json()["unknown_channel"] == 1
    drained()

    listed = api.get("/api/inbox", params={"state": "unknown_channel"}, headers=admin_headers).json()["items"]
    assert sorted((e["source"], e["phone_number_id"], e["session"]) for e in listed) == sorted(
        [
            ("whatsapp", "1199999999999", None),
            ("whatsapp", B["phone_number_id"], None),
            ("waha", None, "no-such-session"),
        ]
    )
    assert api.get("/api/inbox", params={"state": "unknown_channel"}).status_code in (401, 403)
    # Never processed: no contact, no conversation from them, still unknown_channel after the sweeps.
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Conversation)) == 0
    assert inbox_count("unknown_channel") == 3
    metrics = api.get("/metrics").text
    assert 'wacrm_events_unknown_channel_total{source="whatsapp"}' in metrics
    assert 'wacrm_events_unknown_channel_total{source="waha"}' in metrics


def test_channels_are_managed_with_clear_refusals_and_secrets_are_write_only(
    api, admin_headers, three, worker, waha
):
    listed = api.get("/api/channels", headers=admin_headers)
    assert listed.status_code == 200
    channels = listed.json()
    assert [c["name"] for c in channels] == ["settings", A["name"], B["name"], W["name"]]
    assert channels[0]["default"] is True and channels[0]["id"] is None
    shown = {c["name"]: c for c in channels}
    assert shown[A["name"]]["phone_number_id"] == A["phone_number_id"]
    assert shown[W["name"]]["session"] == W["session"]
    everything = listed.text + json.dumps(three)
    for secret in SECRETS:
        assert secret not in everything

    # 409 on a number or session that is already a channel; 422 naming the field; nothing changes.
    again = api.post("/api/channels", json={**A, "name": "another"}, headers=admin_headers)
    assert again.status_code == 409 and "phone_number_id" in again.text
    again = api.post(
        "/api/channels", json={**W, "name": "another", "waha_url": waha.url}, headers=admin_headers
    )
    assert again.status_code == 409 and "session" in again.text
    missing = api.post(
        "/api/channels", json={"name": "x", "kind": "cloud", "phone_number_id": "5"}, headers=admin_headers
    )
    assert missing.status_code == 422 and "access_token" in missing.text
    wrong = api.post(
        "/api/channels",
        json={**B, "name": "y", "phone_number_id": "7", "session": "s"},
        headers=admin_headers,
    )
    assert wrong.status_code == 422 and "session" in wrong.text
    assert api.post("/api/channels", json={**A, "kind": "telegram"}, headers=admin_headers).status_code == 422
    # A refused body is not echoed back, secrets and all.
    echoed = api.post("/api/channels", json={**A, "name": "z" * 65}, headers=admin_headers)
    assert echoed.status_code == 422 and "name" in echoed.text
    assert A["access_token"] not in echoed.text and A["app_secret"] not in echoed.text
    too_long = api.post("/api/channels", json={**A, "access_token": "t0ken" * 1000}, headers=admin_headers)
    assert too_long.status_code == 422 and "access_token" in too_long.text and "t0ken" not in too_long.text
    assert (
        api.post(
            "/api/channels", json={**A, "name": "settings", "phone_number_id": "8"}, headers=admin_headers
        ).status_code
        == 422
    )
    assert (
        api.patch("/api/channels/999999", json={"enabled": False}, headers=admin_headers).status_code == 404
    )
    assert api.post("/api/channels", json=A).status_code in (401, 403)
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Channel)) == 3

    # Exactly one default.
    a_id, b_id = three[A["name"]]["id"], three[B["name"]]["id"]
    assert api.patch(f"/api/channels/{a_id}", json={"default": True}, headers=admin_headers).json()["default"]
    assert api.patch(f"/api/channels/{b_id}", json={"default": True}, headers=admin_headers).json()["default"]
    defaults = [c["name"] for c in api.get("/api/channels", headers=admin_headers).json() if c["default"]]
    assert defaults == [B["name"]]
    refused = api.patch(f"/api/channels/{b_id}", json={"enabled": False}, headers=admin_headers)
    assert refused.status_code == 422 and "enabled" in refused.text
    # A secret changed through PATCH: the webhook takes the new one, and never shows it.
    rotated = api.patch(
        f"/api/channels/{a_id}", json={"app_secret": "rotated-secret", "team": "ops"}, headers=admin_headers
    )
    assert (
        rotated.status_code == 200
        and "rotated-secret" not in rotated.text
        and rotated.json()["team"] == "ops"
    )
    assert cloud_post(api, A["phone_number_id"], "rotated-secret", "Halo").status_code == 200
    assert cloud_post(api, A["phone_number_id"], A["app_secret"], "Halo").status_code == 401

    # Encrypted at rest: the raw columns hold no secret, and decrypt to them.
    with session_scope() as session:
        raw = session.execute(text("SELECT * FROM channels")).mappings().all()
        dumped = json.dumps([dict(row) for row in raw], default=str)
        for secret in [*SECRETS, "rotated-secret"]:
            assert secret not in dumped
        row = session.scalars(select(Channel).where(Channel.name == W["name"])).one()
        assert decrypt(row.hmac_key_secret) == W["hmac_key"]
        assert row.hmac_key_secret.startswith("gAAAA")  # a Fernet token

    # Never logged: not by the worker, not by this process.
    for secret in [*SECRETS, "rotated-secret"]:
        assert secret not in worker.log_path.read_text(errors="replace")


def test_secrets_are_refused_without_secret_key(api, admin_headers, monkeypatch):
    from settings import settings

    monkeypatch.setattr(settings, "secret_key", None)
    refused = api.post("/api/channels", json=A, headers=admin_headers)
    assert refused.status_code == 503 and "SECRET_KEY" in refused.text
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Channel)) == 0


def test_with_no_channel_stored_the_settings_number_works_as_before(
    make_client, admin_headers, cloud_api, worker, drained
):
    api = make_client(development_mode=False, **SETTINGS_SECRETS)
    # Any phone_number_id, as before channels: the settings channel takes it.
    assert (
        cloud_post(api, "whatever-number", SETTINGS_SECRETS["whatsapp_app_secret"], "Halo").status_code == 200
    )
    assert waha_post(api, "any-session", SETTINGS_SECRETS["waha_hmac_key"], "Halo").status_code == 200
    assert cloud_post(api, "whatever-number", "wrong", "Halo").status_code == 401
    drained()
    detail = wait_for(
        lambda: (d := contact_detail(api, admin_headers))["conversations"] and d, 30, "the conversation"
    )
    assert [c["channel"] for c in detail["conversations"]] == ["settings"]
    conversation = detail["conversations"][0]["id"]
    answer = api.post(
        f"/api/conversations/{conversation}/messages",
        json={"text": "Halo juga"},
        headers={**admin_headers, "Idempotency-Key": "settings-reply"},
    )
    assert answer.status_code == 202
    wait_for(lambda: cloud_api.sent_from, 30, "the reply sent")
    assert cloud_api.sent_from == [(cloud_api.phone_number_id, BUDI)]
    with session_scope() as session:
        assert session.scalar(select(OutboundMessage.channel_id)) is None


def conversations_of(api, headers) -> dict[str, dict]:
    found = api.get("/api/contacts", params={"phone": BUDI}, headers=headers).json()["items"]
    if not found:
        return {}
    detail = api.get(f"/api/contacts/{found[0]['id']}", headers=headers).json()
    return {c["channel"]: c for c in detail["conversations"]}


def test_an_agent_reaches_only_the_conversations_of_their_teams_numbers(
    api, admin_headers, three, worker, drained
):
    """Teams meet channels: a customer who writes to two numbers is, for an agent of one of
    them, only that conversation; a supervisor reassigns; the audit names the signed-in account
    whatever X-Actor claims."""
    add(api, admin_headers, "joko", teams=("jakarta",))
    add(api, admin_headers, "sari", role="supervisor", teams=("jakarta", "surabaya"))
    add(api, admin_headers, "citra.s", teams=("surabaya",))
    joko, sari = token_of(api, "joko"), token_of(api, "sari")

    # Budi writes to the Surabaya number only: Jakarta's agent does not see him at all.
    assert waha_post(api, W["session"], W["hmac_key"], "Halo, mau tanya ongkir").status_code == 200
    drained()
    surabaya = wait_for(
        lambda: conversations_of(api, admin_headers).get(W["name"]), 30, "Budi's conversation"
    )
    assert api.get("/api/contacts", params={"phone": BUDI}, headers=joko).json()["items"] == []
    contact_id = api.get("/api/contacts", params={"phone": BUDI}, headers=admin_headers).json()["items"][0][
        "id"
    ]
    assert api.get(f"/api/contacts/{contact_id}", headers=joko).status_code == 404
    reply = api.post(
        f"/api/conversations/{surabaya['id']}/messages",
        json={"text": "dari Jakarta"},
        headers={**joko, "Idempotency-Key": "joko-1"},
    )
    assert reply.status_code == 404

    # He writes to the Jakarta number too: Joko sees that conversation and its messages, only.
    assert cloud_post(api, A["phone_number_id"], A["app_secret"], "Ada warna merah?").status_code == 200
    drained()
    wait_for(lambda: A["name"] in conversations_of(api, admin_headers), 30, "the Jakarta conversation")
    assert list(conversations_of(api, joko)) == [A["name"]]
    messages = api.get(f"/api/contacts/{contact_id}/messages", headers=joko).json()["items"]
    assert [(m["channel"], m["text"]) for m in messages] == [(A["name"], "Ada warna merah?")]
    assert (
        api.post(
            f"/api/conversations/{surabaya['id']}/messages",
            json={"text": "dari Jakarta"},
            headers={**joko, "Idempotency-Key": "joko-2"},
        ).status_code
        == 404
    )

    # An agent may not reassign; the supervisor of both teams does, and the audit names her.
    body = {"agent": "citra.s"}
    assert (
        api.post(f"/api/conversations/{surabaya['id']}/assignee", json=body, headers=joko).status_code == 403
    )
    moved = api.post(
        f"/api/conversations/{surabaya['id']}/assignee", json=body, headers={**sari, "X-Actor": "mallory"}
    )
    assert moved.status_code == 200, moved.text
    audit = api.get(
        "/api/audit", params={"subject": f"conversation:{surabaya['id']}"}, headers=admin_headers
    ).json()["items"]
    assert [(entry["actor"], entry["action"]) for entry in audit] == [("sari", "conversation.taken_over")]
    # An agent of another team cannot be given the conversation.
    refused = api.post(f"/api/conversations/{surabaya['id']}/assignee", json={"agent": "joko"}, headers=sari)
    assert refused.status_code == 422
    assert PASSWORD not in refused.text
