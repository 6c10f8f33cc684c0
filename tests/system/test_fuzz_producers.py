"""Fuzzing the webhook producers, and the other findings of the security review.

Hypothesis posts generated bodies to ``/webhooks/whatsapp``, ``/webhooks/orders`` and
``/webhooks/waha``: documents of the right shape with wrong types, missing fields, huge and
unusual strings (NUL, lone surrogates, digits of other scripts) and JSON that Python reads but
PostgreSQL cannot store (``NaN``, ``1e400``, integers of 4,400 digits, nesting 5,000 deep);
random JSON; random bytes; signed, unsigned and wrongly signed. Whatever comes in, a producer
answers below 500 (a 503 would say the database is down, which it is not), a refusal (4xx)
changes nothing in the inbox, and an acceptance stores and publishes exactly what it says.

Reproducible: ``derandomize=True`` (the examples depend only on the code) and no example
database. No worker: published ids are captured, so nothing here is processed.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, func, select, text

from domain.order_events import EVENT_TYPES
from models import (
    Contact,
    ContactIdentity,
    CrmSyncJob,
    DeliveryStatus,
    InboxEvent,
    Label,
    Message,
    Order,
    OrderItem,
)
from models.db import session_scope
from observability.logs import MaskingJsonFormatter
from producers.waha import LABEL_EVENTS, MESSAGE_EVENTS
from testkit import samples
from testkit.processes import wait_for

WA_SECRET, ORDER_SECRET, WAHA_KEY = "fuzz-app-secret", "fuzz-order-secret", "fuzz-waha-key"
MAX_BODY = 256 * 1024
FUZZ = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# ---------------------------------------------------------------------------------------------
# Values

MISSING = object()  # the field is left out
SPLICE = "\ue000raw json\ue000"  # replaced in the encoded body by one of RAW_TOKENS

RAW_TOKENS = st.sampled_from(
    [
        "NaN",
        "Infinity",
        "-Infinity",
        "1e400",
        "-1e400",
        "1" * 4400,  # more digits than Python turns into an int
        "[" * 5000 + "]" * 5000,  # deeper than Python's recursion limit
        "[" * 100 + "]" * 100,
        '{"a":' * 80 + "1" + "}" * 80,
        '"\\ud800"',  # a lone surrogate: valid JSON, not storable text
        '"x\\udfff"',
        '"a\\u0000b"',
        '"\\ud83d\\ude00"',  # a proper surrogate pair
        "-0",
        "0.1e-400",
        "true",
        "null",
        "[]",
        "{}",
    ]
)
NASTY_TEXT = st.one_of(
    st.text(st.characters(categories=["Cs", "Cc", "Nd", "No", "Zs", "So", "Mn"]), max_size=12),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "\ud800",
            "١٢٣٤٥",
            "²",
            "\uff11\uff12\uff13",
            "\U0001d7d7\U0001d7d7",
            "\u202e",
            "null",
            "NaN",
        ]
    ),
)
HUGE_TEXT = st.builds(
    lambda char, size: char * size,
    st.sampled_from(["x", "9", "é", "😀", " "]),
    st.integers(min_value=256, max_value=300_000),
)
WRONG = st.one_of(
    st.just(MISSING),
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(),  # NaN and the infinities included
    st.text(max_size=10),
    NASTY_TEXT,
    HUGE_TEXT,
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.just(SPLICE),
)


def maybe(good: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly (9 in 10) a right value, else a wrong type, a nasty or huge string, raw JSON, nothing:
    so that a fair share of documents pass validation and reach the database."""
    return st.integers(min_value=0, max_value=9).flatmap(lambda i: WRONG if i == 9 else good)


def fields(**values: st.SearchStrategy) -> st.SearchStrategy:
    return st.fixed_dictionaries({name.rstrip("_"): maybe(value) for name, value in values.items()})


def without_missing(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_missing(v) for k, v in value.items() if v is not MISSING}
    if isinstance(value, list):
        return [without_missing(v) for v in value if v is not MISSING]
    return value


SHORT = st.text(max_size=30)
JSON_ANY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
WA_IDS = st.from_regex(r"\A62[1-9][0-9]{7,11}\Z") | st.sampled_from(["16505551234", "0", "+6281212345678"])
EPOCH_SECONDS = st.integers(min_value=0, max_value=99_999_999_999).map(str) | st.sampled_from(
    ["", "-1", "1e9", "١٢٣٤٥", "123456789012", " 12", "1.5"]
)
WAMIDS = st.text(min_size=1, max_size=40).map(lambda s: f"wamid.{s}") | st.text(max_size=300)
PHONES = st.one_of(
    st.sampled_from(["0812-1234-5678", "+62 812 1234 5678", "6281212345678", "+1 650 555 1234"]),
    st.from_regex(r"\A08[1-9][0-9]{7,10}\Z"),
    st.sampled_from(["0012", "+", "12", "abc", "\u0660\u0668\u0661\u0662"]),
    st.from_regex(r"\A\+?[0-9 ()-]{0,24}\Z"),
)
IDS = st.text(min_size=1, max_size=20) | st.integers(min_value=0, max_value=10**12)
EXTREME_DATES = st.sampled_from(
    [
        "0001-01-01T00:00:00",
        "0001-01-01T00:00:00+05:00",
        "9999-12-31T23:59:59-05:00",
        "9999-12-31T23:59:59",
        "2026-02-30T10:00:00",
        "2026-11-23",
        "yesterday",
    ]
)
OFFSETS = st.none() | st.builds(lambda m: timezone(timedelta(minutes=m)), st.integers(-1439, 1439))


def moments(start: datetime, end: datetime) -> st.SearchStrategy[str]:
    return st.builds(lambda at, tz: at.replace(tzinfo=tz).isoformat(), st.datetimes(start, end), OFFSETS)


ISO_MOMENTS = st.one_of(
    moments(datetime(2000, 1, 1), datetime(2100, 1, 1)),
    moments(datetime(2000, 1, 1), datetime(2100, 1, 1)),
    moments(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59)),
    EXTREME_DATES,
)
DATES = st.dates().map(str) | st.sampled_from(["2026-13-01", "26-11-2026", "2026-11-26T00:00"])

# ---------------------------------------------------------------------------------------------
# Documents of the right shape, more or less

WA_MESSAGE = fields(
    from_=WA_IDS,
    id=WAMIDS,
    timestamp=EPOCH_SECONDS,
    type=st.sampled_from(["text", "image", "interactive", "reaction", "system", "unknown", "order"]),
    text=fields(body=SHORT | HUGE_TEXT),
    context=JSON_ANY,
)
WA_STATUS = fields(
    id=WAMIDS,
    status=st.sampled_from(["sent", "delivered", "read", "failed"]) | SHORT,
    timestamp=EPOCH_SECONDS,
    recipient_id=WA_IDS,
    errors=st.lists(JSON_ANY, max_size=2),
)
WA_VALUE = fields(
    messaging_product=st.just("whatsapp"),
    metadata=fields(display_phone_number=WA_IDS, phone_number_id=SHORT),
    contacts=st.lists(fields(profile=fields(name=SHORT), wa_id=WA_IDS), max_size=2),
    messages=st.lists(WA_MESSAGE, max_size=3),
    statuses=st.lists(WA_STATUS, max_size=2),
    errors=st.lists(fields(code=st.integers(), title=SHORT), max_size=1),
)
WA_ENVELOPE = fields(
    object=st.just("whatsapp_business_account"),
    entry=st.lists(
        fields(
            id=SHORT,
            changes=st.lists(
                fields(field=st.sampled_from(["messages", "account_update"]), value=WA_VALUE), max_size=2
            ),
        ),
        max_size=2,
    ),
)
ORDER_EVENT = st.fixed_dictionaries(
    {
        "id": maybe(st.uuids().map(str) | st.text(max_size=20).map(lambda s: f"evt-{s}")),
        "type": maybe(st.sampled_from(EVENT_TYPES)),
        "occurred_at": maybe(ISO_MOMENTS),
        "contact": maybe(fields(id=IDS, name=SHORT, phone=PHONES)),
        "order": maybe(
            fields(
                id=IDS,
                total=st.integers(min_value=-5, max_value=10**20) | st.floats(),
                currency=st.just("IDR"),
                estimated_delivery_date=DATES,
                tracking_number=SHORT,
                courier=SHORT,
            )
        ),
    },
)
# Now and then a key that would change several orders at once.
ORDER_EVENT = st.tuples(ORDER_EVENT, st.integers(min_value=0, max_value=9), JSON_ANY).map(
    lambda drawn: {**drawn[0], "orders": drawn[2]} if drawn[1] == 9 else drawn[0]
)
WAHA_CHATS = st.sampled_from(["6281212345678@c.us", "120363@g.us", "status@broadcast", "x@lid"]) | SHORT
WAHA_ENVELOPE = fields(
    id=st.uuids().map(str) | st.text(max_size=40).map(lambda s: f"evt-{s}"),
    event=st.sampled_from([*LABEL_EVENTS, *MESSAGE_EVENTS, "session.status", "message.any"]),
    session=st.just("default"),
    timestamp=st.integers(min_value=-1, max_value=260_000_000_000_000),
    me=st.dictionaries(st.text(max_size=8), JSON_ANY, max_size=3),
    metadata=st.dictionaries(st.text(max_size=8), JSON_ANY, max_size=3),
    payload=fields(
        id=IDS,
        name=SHORT,
        labelId=IDS,
        chatId=WAHA_CHATS,
        label=st.none() | fields(id=IDS, name=SHORT),
        from_=WAHA_CHATS,
        timestamp=st.integers(min_value=-1, max_value=260_000_000_000),
        body=SHORT | HUGE_TEXT,
        ack=st.integers(min_value=-1, max_value=5),
    ),
)
WAHA_TIMESTAMP_HEADERS = (
    st.none()
    | st.integers(min_value=0, max_value=10**15).map(str)
    | st.sampled_from(["²", "-1", " 12 ", "\uff11\uff12", "9" * 5000, ""])
)


@st.composite
def bodies(draw: st.DrawFn, documents: st.SearchStrategy) -> bytes:
    """The document as JSON bytes, with SPLICE replaced by raw JSON and lone surrogates kept."""
    document = without_missing(draw(documents))
    ascii_only = draw(st.booleans())
    encoded = json.dumps(document, ensure_ascii=ascii_only)
    marker = json.dumps(SPLICE, ensure_ascii=ascii_only)
    if marker in encoded:
        encoded = encoded.replace(marker, draw(RAW_TOKENS))
    return encoded.encode("utf-8", "surrogatepass")


SIGNING = st.sampled_from(["valid"] * 6 + ["missing", "wrong"])

# ---------------------------------------------------------------------------------------------
# The invariant


@pytest.fixture
def published(monkeypatch) -> list[int]:
    import producers.inbox

    ids: list[int] = []
    monkeypatch.setattr(producers.inbox, "enqueue", ids.extend)
    return ids


@pytest.fixture
def fuzz_client(make_client):
    return make_client(
        whatsapp_app_secret=WA_SECRET,
        order_webhook_secret=ORDER_SECRET,
        waha_hmac_key=WAHA_KEY,
        max_body_bytes=MAX_BODY,
    )


def inbox_rows() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(InboxEvent))


def signed(path: str, body: bytes, signing: str) -> dict[str, str]:
    header, secret, algorithm, prefix = {
        "/webhooks/whatsapp": ("X-Hub-Signature-256", WA_SECRET, hashlib.sha256, "sha256="),
        "/webhooks/orders": ("X-Signature-256", ORDER_SECRET, hashlib.sha256, "sha256="),
        "/webhooks/waha": ("X-Webhook-Hmac", WAHA_KEY, hashlib.sha512, ""),
    }[path]
    if signing == "missing":
        return {}
    key = secret if signing == "valid" else secret + "-guess"
    return {header: prefix + hmac.new(key.encode(), body, algorithm).hexdigest()}


def header_bytes(value: str) -> bytes:
    """As the server will read it: HTTP headers are Latin-1."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")


def post_and_check(client, published: list[int], path: str, body: bytes, signing: str, **headers) -> int:
    """POST; then no 5xx, a refusal changed nothing, an acceptance stored what it says."""
    before, published_before = inbox_rows(), len(published)
    answer = client.post(
        path,
        content=body,
        headers={"Content-Type": "application/json", **signed(path, body, signing), **headers},
    )
    event(f"{path} answered {answer.status_code}")
    assert answer.status_code < 500, f"{answer.status_code}: {answer.text[:500]}"
    stored = inbox_rows() - before
    if answer.status_code >= 400:
        assert stored == 0, f"refused with {answer.status_code} yet stored {stored} rows"
        assert answer.json()["error"]
    else:
        reply = answer.json()
        accepted = reply["accepted"] if "accepted" in reply else int(reply["status"] == "accepted")
        assert stored == accepted, reply
        assert len(published) - published_before == accepted
    if signing != "valid" and len(body) <= MAX_BODY:
        assert answer.status_code == 401
    return answer.status_code


# ---------------------------------------------------------------------------------------------
# The producers


@FUZZ
@given(body=bodies(WA_ENVELOPE | JSON_ANY), signing=SIGNING)
def test_whatsapp_webhook_survives_any_envelope(fuzz_client, published, body, signing):
    post_and_check(fuzz_client, published, "/webhooks/whatsapp", body, signing)


# A total of more digits than Decimal's context holds once rounded to cents once answered 500.
_HUGE_TOTAL = (
    b'{"id": "e3e70682", "type": "order.created", "occurred_at": "2000-01-01T00:00:00", "contact": '
    b'{"id": "0", "phone": "0812-1234-5678"}, "order": {"id": "0", "total": 1e+26, "currency": "IDR"}}'
)


@FUZZ
@given(body=bodies(ORDER_EVENT | JSON_ANY), signing=SIGNING)
@example(body=_HUGE_TOTAL, signing="valid")
def test_order_webhook_survives_any_event(fuzz_client, published, body, signing):
    post_and_check(fuzz_client, published, "/webhooks/orders", body, signing)


@FUZZ
@given(body=bodies(WAHA_ENVELOPE | JSON_ANY), signing=SIGNING, at=WAHA_TIMESTAMP_HEADERS)
def test_waha_webhook_survives_any_envelope(fuzz_client, published, body, signing, at):
    headers = {} if at is None else {"X-Webhook-Timestamp": header_bytes(at)}
    post_and_check(fuzz_client, published, "/webhooks/waha", body, signing, **headers)


# Real payloads (testkit/samples.py, fixed ids and times), each mutated in one to three places: a value
# replaced, or a key added, anywhere in the document. The rest stays valid, so the odd value
# travels as far as it can: through validation into the database.
T0 = 1_790_000_000
GOOD = {
    "/webhooks/whatsapp": [
        samples.envelope(
            messages=[samples.text("6281212345678", "Halo kak", id="wamid.fuzz.1", at=T0)],
            contacts=[samples.profile("6281212345678", "Budi")],
        ),
        samples.envelope(statuses=[samples.status("wamid.fuzz.2", "delivered", "6281212345678", at=T0)]),
    ],
    "/webhooks/orders": [
        samples.order_event("order.created", event_id="evt-fuzz", occurred_at="2026-11-23T09:15:00+07:00"),
        samples.order_event(
            "order.shipped", event_id="evt-fuzz", tracking_number="JNE1", estimated_delivery_date="2026-11-26"
        ),
    ],
    "/webhooks/waha": [
        samples.waha_label_chat("added", "6281212345678@c.us", "7", "Lead", id="evt-fuzz", at_ms=T0 * 1000),
        samples.waha_message("6281212345678@c.us", "Halo", id="false_fuzz", at=T0),
        samples.waha_ack("true_fuzz", 3, "6281212345678@c.us", legacy=True),
    ],
}
NEW_IDS = {  # where each source's dedupe id lives, so that mutants are new events, not replays
    "/webhooks/whatsapp": lambda d: d["entry"][0]["changes"][0]["value"]["messages"][0],
    "/webhooks/orders": lambda d: d,
    "/webhooks/waha": lambda d: d,
}
NASTY_VALUE = st.one_of(st.just(SPLICE), st.just(SPLICE), WRONG, JSON_ANY)


def places(document: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) that can take a value: existing keys and indexes, and a new key."""
    found: list[tuple[Any, Any]] = []
    pending = [document]
    while pending:
        container = pending.pop()
        if isinstance(container, dict):
            found += [(container, key) for key in container] + [(container, "fuzz")]
            pending += list(container.values())
        elif isinstance(container, list):
            found += [(container, index) for index in range(len(container))]
            pending += container
    return found


@st.composite
def mutants(draw: st.DrawFn, path: str) -> Any:
    document = json.loads(json.dumps(draw(st.sampled_from(GOOD[path]))))  # a deep copy
    with contextlib.suppress(KeyError, IndexError, TypeError):  # a statuses-only sample: a replay
        NEW_IDS[path](document)["id"] = str(draw(st.uuids()))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        container, key = draw(st.sampled_from(places(document)))
        container[key] = draw(NASTY_VALUE)
    return document


@pytest.mark.parametrize("path", list(GOOD))
@settings(FUZZ, max_examples=60)
@given(data=st.data())
def test_producers_survive_one_odd_value_in_a_real_payload(fuzz_client, published, path, data):
    body = data.draw(bodies(mutants(path)), label="body")
    post_and_check(fuzz_client, published, path, body, data.draw(SIGNING, label="signing"))


@settings(FUZZ, max_examples=50)
@given(
    path=st.sampled_from(["/webhooks/whatsapp", "/webhooks/orders", "/webhooks/waha"]),
    body=st.binary(max_size=2000) | HUGE_TEXT.map(str.encode),
    signing=st.sampled_from(["valid", "missing"]),
)
def test_producers_survive_any_bytes(fuzz_client, published, path, body, signing):
    assert post_and_check(fuzz_client, published, path, body, signing) in (400, 401, 413, 422)


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("NaN", "store"),
        ("1e400", "store"),
        ("1" * 4400, "store"),
        ("[" * 5000 + "]" * 5000, "nested"),
        ("[" * 100 + "]" * 100, "nested"),
        ('"\\ud800"', "surrogate"),
    ],
)
def test_json_postgresql_cannot_store_is_refused_with_400(client, published, token, why):
    """Each of these once answered 500 or 503 (which the sender retries for ever)."""
    good = samples.inbound_text("6281212345678", "Budi", "Halo")
    good["entry"][0]["changes"][0]["value"]["messages"][0]["context"] = SPLICE
    body = json.dumps(good).replace(json.dumps(SPLICE), token).encode()
    answer = client.post("/webhooks/whatsapp", content=body)
    assert answer.status_code == 400, answer.text
    assert why in answer.json()["error"]
    assert inbox_rows() == 0


@pytest.mark.parametrize(
    "moment", ["0001-01-01T00:00:00", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"]
)
def test_order_time_out_of_range_is_422(client, published, moment):
    answer = client.post("/webhooks/orders", json=samples.order_event("contact.created", occurred_at=moment))
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == "occurred_at"


@pytest.mark.parametrize("at", ["²", "9" * 5000])
def test_waha_timestamp_header_that_is_not_ascii_digits_is_ignored(client, published, at):
    envelope = samples.waha_label_upsert("7", "Lead", legacy=True)
    body, headers = samples.waha_encode(envelope)
    answer = client.post(
        "/webhooks/waha", content=body, headers={**headers, "X-Webhook-Timestamp": header_bytes(at)}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 1


# ---------------------------------------------------------------------------------------------
# The rest of the review: tokens, body limits, logs


def test_every_admin_route_is_closed_without_the_token(make_client):
    """Every operation of the API (from its OpenAPI schema) but signing in, and the signed-in CSV
    pages: 401 without a credential or with a wrong one; while ADMIN_TOKEN is unset, 503 for the
    API (saying so) and the sign-in form (401) for the pages."""
    client, closed = make_client(), make_client(admin_token=None)
    operations = [
        (method.upper(), path)
        for path, item in client.app.openapi()["paths"].items()
        if path.startswith("/api/") and path != "/api/auth/token"
        for method in item
    ]
    assert len(operations) > 5
    operations += [("GET", "/dashboard/contacts.csv")]
    for method, template in operations:
        path = re.sub(r"\{[^}]+\}", "1", template)  # /api/contacts/{contact_id}: any id will do
        for app_client, headers, expected in (
            (client, {}, 401),
            (client, {"Authorization": "Bearer guess"}, 401),
            (closed, {}, 401 if path.startswith("/dashboard") else 503),
        ):
            answer = app_client.request(method, path, params={"label": "x"}, headers=headers, json={})
            assert answer.status_code == expected, f"{method} {template}: {answer.status_code}"


def test_api_bodies_are_limited_before_the_token_is_read(client, admin_headers, published):
    big = b'{"label": "x", "text": "' + b"a" * 200_000 + b'"}'
    for headers in ({}, admin_headers):
        answer = client.post(
            "/api/broadcasts", content=big, headers={"Content-Type": "application/json", **headers}
        )
        assert answer.status_code == 413

    def chunked():  # no Content-Length: counted as it arrives
        for _ in range(200):
            yield b"a" * 1000

    answer = client.post("/api/broadcasts", content=chunked(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 413
    assert client.post("/api/broadcasts", json={"label": "x", "text": "y"}).status_code == 401

    # Webhooks keep their own, larger limit (MAX_BODY_BYTES), behind a --root-path too.
    body, headers = samples.encode(samples.inbound_text("6281212345678", "Budi", "x" * 200_000))
    for prefix in ("", "/crm"):
        behind = TestClient(client.app, root_path=prefix)
        assert behind.post(f"{prefix}/webhooks/whatsapp", content=body, headers=headers).status_code == 200
    assert published and inbox_rows() == 1


@pytest.fixture
def log_lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(MaskingJsonFormatter("{levelname}{message}", style="{"))
    logger = logging.getLogger("tests.fuzz.masking")
    logger.handlers[:], logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    yield logger, stream
    logger.handlers.clear()


@settings(FUZZ, max_examples=100)
@given(digits=st.from_regex(r"\A8[1-9][0-9]{7,10}\Z"))
def test_logs_mask_every_phone_number_form(log_lines, digits):
    """E.164, wa_id, WAHA chat id, typed with or without groups, and percent-encoded in a URL."""
    logger, stream = log_lines
    forms = [f"+62{digits}", f"62{digits}", f"62{digits}@c.us", f"0{digits}"]
    if 3 <= len(digits[7:]) <= 4:
        forms += [f"0{digits[:3]}-{digits[3:7]}-{digits[7:]}", f"+62 {digits[:3]} {digits[3:7]} {digits[7:]}"]
    stream.seek(0)
    stream.truncate()
    logger.info("from %s", forms[0], extra={"wa_id": forms[1], "chat": forms[2], "typed": forms[3:]})
    logger.warning("failed for %s", forms, exc_info=ValueError(f"no contact {forms[0]}"))
    for form in forms:  # as uvicorn's access log shows a query string
        logger.info('"GET /api/contacts?phone=%s HTTP/1.1" 200', quote(form, safe=""))
    out = stream.getvalue()
    for form in forms:
        assert form not in out and quote(form, safe="") not in out
    assert digits not in out and digits[:7] not in out.replace(" ", "").replace("-", "")


def test_logs_hide_the_parameters_of_a_failed_statement(log_lines):
    logger, stream = log_lines
    engine = create_engine("sqlite://")
    words = "Halo kak, masih ada stok ukuran 42?"
    with engine.connect() as connection:
        connection.execute(text("CREATE TABLE m (body TEXT UNIQUE)"))
        connection.execute(text("INSERT INTO m VALUES (:body)"), {"body": words})
        with pytest.raises(Exception) as failure:
            connection.execute(text("INSERT INTO m VALUES (:body)"), {"body": words})
    logger.exception("could not record", exc_info=failure.value)
    logger.info("retrying after %s", failure.value)
    out = stream.getvalue()
    assert "UNIQUE constraint failed" in out
    assert out.count("[parameters: hidden]") == 2
    assert words not in out


# ---------------------------------------------------------------------------------------------
# Every limit, read from the models: at the limit a value is accepted and processed; one past it
# is refused naming the field, and nothing is stored. The table says where each field lands;
# the numbers come from the columns, never from the producers.


def length(column: Any, prefix: str = "") -> int:
    """What a String column holds after ``prefix``: the model's own ``.length``."""
    return column.type.length - len(prefix)


@dataclass(frozen=True)
class Limit:
    path: str  # the webhook
    field: str  # how the refusal names the field (its end)
    limit: int  # the last value (text: length) that fits
    document: Callable[[Any], dict]  # a good document with this value in its place
    kind: str = "text"  # text | digits (a phone or chat id) | number | minimum
    unique: bool = False  # the value is the event's id: each example needs its own


def _order(**order: Any) -> dict:
    return samples.order_event(
        "order.shipped", "SO-LIMIT", courier="JNE", tracking_number="JNE1", currency="IDR", **order
    )


def _order_with(where: str, key: str) -> Callable[[Any], dict]:
    def build(value: Any) -> dict:
        event = _order()
        (event if where == "event" else event[where])[key] = value
        return event

    return build


def _order_item(key: str) -> Callable[[Any], dict]:
    """An order with one item whose ``key`` is the value."""

    def build(value: Any) -> dict:
        item = {"sku": "KAOS-M", "name": "Kaos", "qty": 1, "price": 50000, key: value}
        return _order(items=[item])

    return build


def _cloud_message(**changes: Any) -> Callable[[Any], dict]:
    """An inbound text; ``changes`` maps a key of the message to how the value goes there."""

    def build(value: Any) -> dict:
        message = samples.text("6281212345678", "Halo kak")
        contact = samples.profile("6281212345678", "Budi")
        for key, put in changes.items():
            put(message, contact, key, value)
        return samples.envelope(messages=[message], contacts=[contact])

    return build


def _in_message(message: dict, contact: dict, key: str, value: Any) -> None:
    message[key] = value


def _in_nested(outer: str, extra: dict | None = None) -> Callable[[dict, dict, str, Any], None]:
    def put(message: dict, contact: dict, key: str, value: Any) -> None:
        message[outer] = {**(extra or {}), key: value}

    return put


def _in_profile(message: dict, contact: dict, key: str, value: Any) -> None:
    contact["profile"][key] = value


def _bsuid_sender(message: dict, contact: dict, key: str, value: Any) -> None:
    """A message that names its sender by BSUID only."""
    del message["from"]
    message["from_user_id"] = value


def _wa_id_in_profile(message: dict, contact: dict, key: str, value: Any) -> None:
    """A message with only a BSUID: its wa_id comes from the sender's profile."""
    del message["from"]
    message["from_user_id"] = contact["user_id"] = "US.LIMIT.1"
    contact["wa_id"] = value


def _cloud_status(key: str) -> Callable[[Any], dict]:
    def build(value: Any) -> dict:
        status = samples.status(samples.wamid("out"), "delivered", "6281212345678")
        status[key] = value
        return samples.envelope(statuses=[status])

    return build


def _waha(make: Callable[[], dict], *path: str) -> Callable[[Any], dict]:
    """A WAHA event with the value at ``path`` (objects on the way made if missing)."""

    def build(value: Any) -> dict:
        container = envelope = make()
        for key in path[:-1]:
            if not isinstance(container.get(key), dict):
                container[key] = {}
            container = container[key]
        container[path[-1]] = value
        return envelope

    return build


def _waha_chat() -> dict:
    return samples.waha_label_chat("added", "6281212345678@c.us", "7", "Lead")


def _waha_message() -> dict:
    return samples.waha_message("6281212345678@c.us", "Halo", name="Budi")


def _waha_ack() -> dict:
    return samples.waha_ack(f"true_6281212345678@c.us_{uuid.uuid4().hex.upper()}", 3, "6281212345678@c.us")


MESSAGE = "entry[0].changes[0].value.messages[0]"
LIMITS = [
    # The order system's events (422)
    Limit(
        "/webhooks/orders",
        "id",
        min(length(InboxEvent.dedupe_key), length(CrmSyncJob.dedupe_key, "order-event:")),
        _order_with("event", "id"),
        unique=True,
    ),
    Limit(
        "/webhooks/orders",
        "contact.id",
        length(ContactIdentity.value, "orders:"),
        _order_with("contact", "id"),
    ),
    Limit("/webhooks/orders", "contact.name", length(Contact.name), _order_with("contact", "name")),
    Limit("/webhooks/orders", "order.id", length(Order.external_id), _order_with("order", "id")),
    Limit("/webhooks/orders", "order.currency", length(Order.currency), _order_with("order", "currency")),
    Limit("/webhooks/orders", "order.courier", length(Order.courier), _order_with("order", "courier")),
    Limit(
        "/webhooks/orders",
        "order.tracking_number",
        length(Order.tracking_number),
        _order_with("order", "tracking_number"),
    ),
    Limit("/webhooks/orders", "order.items[0].sku", length(OrderItem.sku), _order_item("sku")),
    Limit("/webhooks/orders", "order.items[0].name", length(OrderItem.name), _order_item("name")),
    Limit(
        "/webhooks/orders",
        "order.items[0].price",
        10 ** (OrderItem.price.type.precision - OrderItem.price.type.scale) - 1,
        _order_item("price"),
        kind="number",
    ),
    Limit(
        "/webhooks/orders",
        "order.items[0].qty",
        10 ** (OrderItem.qty.type.precision - OrderItem.qty.type.scale) - 1,
        _order_item("qty"),
        kind="number",
    ),
    Limit(
        "/webhooks/orders",
        "order.total",
        10 ** (Order.total.type.precision - Order.total.type.scale) - 1,  # the largest whole amount
        _order_with("order", "total"),
        kind="number",
    ),
    # The Cloud API webhook (400: not that shape)
    Limit(
        "/webhooks/whatsapp",
        f"{MESSAGE}.id",
        min(length(Message.external_id), length(InboxEvent.dedupe_key)),
        _cloud_message(id=_in_message),
        unique=True,
    ),
    Limit(
        "/webhooks/whatsapp", f"{MESSAGE}.type", length(Message.raw_type), _cloud_message(type=_in_message)
    ),
    Limit(
        "/webhooks/whatsapp",
        f"{MESSAGE}.from",
        length(ContactIdentity.value),
        _cloud_message(**{"from": _in_message}),
        kind="digits",
    ),
    Limit(
        "/webhooks/whatsapp",
        f"{MESSAGE}.from_user_id",
        length(ContactIdentity.value),
        _cloud_message(user_id=_bsuid_sender),
    ),
    Limit(
        "/webhooks/whatsapp",
        f"{MESSAGE}.context",
        length(Message.reply_to),
        _cloud_message(id=_in_nested("context", {"from": "6281212345678"})),
    ),
    Limit(
        "/webhooks/whatsapp",
        f"{MESSAGE}.referral",
        length(Contact.lead_source, "ad:"),
        _cloud_message(source_id=_in_nested("referral", {"source_type": "ad"})),
    ),
    Limit(
        "/webhooks/whatsapp",
        f"{MESSAGE}.system",
        length(ContactIdentity.value),
        _cloud_message(wa_id=_in_nested("system", {"type": "user_changed_number", "body": "changed"})),
        kind="digits",
    ),
    Limit(
        "/webhooks/whatsapp",
        "value.contacts[0].profile.name",
        length(Contact.name),
        _cloud_message(name=_in_profile),
    ),
    Limit(
        "/webhooks/whatsapp",
        "value.contacts[0].wa_id",
        length(ContactIdentity.value),
        _cloud_message(wa_id=_wa_id_in_profile),
        kind="digits",
    ),
    Limit(
        "/webhooks/whatsapp",
        "value.statuses[0].id",
        # keyed "<wamid>:<status>" in the inbox, whatever the status (up to its column's length)
        min(
            length(DeliveryStatus.external_id),
            length(InboxEvent.dedupe_key) - 1 - length(DeliveryStatus.status),
        ),
        _cloud_status("id"),
        unique=True,
    ),
    Limit(
        "/webhooks/whatsapp",
        "value.statuses[0].status",
        length(DeliveryStatus.status),
        _cloud_status("status"),
    ),
    # WAHA (400: malformed)
    Limit("/webhooks/waha", "session", length(Label.session), _waha(_waha_chat, "session")),
    Limit("/webhooks/waha", "id", length(InboxEvent.dedupe_key), _waha(_waha_chat, "id"), unique=True),
    Limit(
        "/webhooks/waha",
        "payload.id",
        length(Label.external_id),
        _waha(lambda: samples.waha_label_upsert("7", "Lead"), "payload", "id"),
    ),
    Limit(
        "/webhooks/waha",
        "payload.name",
        length(Label.name),
        _waha(lambda: samples.waha_label_upsert("7", "Lead"), "payload", "name"),
    ),
    Limit(
        "/webhooks/waha",
        "payload.color",
        2**31 - 1,
        _waha(lambda: samples.waha_label_upsert("7", "Lead"), "payload", "color"),
        kind="number",
    ),
    Limit(
        "/webhooks/waha",
        "payload.color",
        -(2**31),
        _waha(lambda: samples.waha_label_upsert("7", "Lead"), "payload", "color"),
        kind="minimum",
    ),
    Limit(
        "/webhooks/waha",
        "payload.labelId",
        length(Label.external_id),
        _waha(_waha_chat, "payload", "labelId"),
    ),
    Limit(
        "/webhooks/waha",
        "payload.chatId",
        length(ContactIdentity.value, "@c.us"),
        _waha(_waha_chat, "payload", "chatId"),
        kind="digits",
    ),
    Limit(
        "/webhooks/waha",
        "payload.label.color",
        2**31 - 1,
        _waha(_waha_chat, "payload", "label", "color"),
        kind="number",
    ),
    Limit(
        "/webhooks/waha",
        "payload.id",
        length(Message.external_id),
        _waha(_waha_message, "payload", "id"),
        unique=True,
    ),
    Limit(
        "/webhooks/waha",
        "payload.from",
        length(ContactIdentity.value, "@c.us"),
        _waha(_waha_message, "payload", "from"),
        kind="digits",
    ),
    Limit(
        "/webhooks/waha",
        "payload._data.notifyName",
        length(Contact.name),
        _waha(_waha_message, "payload", "_data", "notifyName"),
    ),
    Limit(
        "/webhooks/waha",
        "payload.replyTo.id",
        length(Message.reply_to),
        _waha(_waha_message, "payload", "replyTo", "id"),
    ),
    Limit(
        "/webhooks/waha",
        "payload.id",
        min(length(DeliveryStatus.external_id), length(Message.external_id)),
        _waha(_waha_ack, "payload", "id"),
        unique=True,
    ),
]
LIMIT_CHARS = st.sampled_from(["x", "é", "9", "😀", "ก"])


def value_of(limit: Limit, past: int, char: str) -> Any:
    """The value ``past`` beyond the limit (0: at it; 1: one too many; below 0: within)."""
    if limit.kind == "number":
        return limit.limit + past
    if limit.kind == "minimum":
        return limit.limit - past
    size = limit.limit + past
    if limit.kind == "digits":  # a phone or chat id: digits, with the chat's suffix if it has one
        suffix = "@c.us" if limit.path == "/webhooks/waha" else ""
        return "62" + "8" * (size - 2) + suffix
    start = uuid.uuid4().hex[:12] if limit.unique else ""
    return (start + char * size)[:size]


def processed(expected: int) -> None:
    """Wait until the worker has processed the new inbox rows; none may fail."""

    def done() -> list[InboxEvent] | None:
        with session_scope() as session:
            rows = session.scalars(select(InboxEvent)).all()
            session.expunge_all()
        waiting = [r for r in rows if r.state == "pending" and not r.last_error]
        return None if waiting else rows

    rows = wait_for(done, 60, "the accepted events processed")
    assert len(rows) == expected
    assert [(r.state, r.last_error) for r in rows] == [("processed", None)] * len(rows)


@pytest.mark.parametrize("limit", LIMITS, ids=lambda limit: f"{limit.path.rsplit('/', 1)[1]}:{limit.field}")
@settings(FUZZ, max_examples=4)
@given(past=st.integers(min_value=-3, max_value=1), char=LIMIT_CHARS)
@example(past=0, char="x")
@example(past=1, char="é")
def test_every_limit_comes_from_the_models(client, worker, limit, past, char):
    value = value_of(limit, past, char)
    document = limit.document(value)
    stored_before = inbox_rows()
    answer = client.post(limit.path, content=json.dumps(document).encode(), headers=samples.encode({})[1])
    if past > 0:
        assert answer.status_code == (422 if limit.path == "/webhooks/orders" else 400), answer.text
        assert answer.json()["field"].endswith(limit.field), answer.json()
        assert inbox_rows() == stored_before
        return
    assert answer.status_code in (200, 202), answer.text
    reply = answer.json()
    accepted = reply["accepted"] if "accepted" in reply else int(reply["status"] == "accepted")
    assert accepted == 1, reply
    processed(stored_before + 1)
