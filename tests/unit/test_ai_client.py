"""The AI agent's client against a fake OpenAI-compatible server over real HTTP: what it asks,
what it makes of the answer, and that every failure is ``AiUnavailable`` (the caller then hands
the conversation to a person) within about the timeout."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from integrations.ai import (
    DEFAULT_MODEL,
    AiAnswer,
    AiChoices,
    AiRequest,
    AiUnavailable,
    FaqItem,
    OpenAICompatibleResponder,
    Turn,
    ai_for,
)
from settings import Settings
from testkit.fakes import FakeServer, Reply
from testkit.fakes.llm import DEFAULT_REPLY, FakeLlm
from testkit.processes import free_port

FAQ = (
    FaqItem("Jam buka toko?", "Senin-Jumat 08.00-17.00, Sabtu 08.00-13.00."),
    FaqItem("Ongkir ke Surabaya?", "Ongkir JNE ke Surabaya Rp15.000, 2-3 hari."),
)
HISTORY = (
    Turn("customer", "Halo, mau tanya"),
    Turn("business", "Halo kak, silakan"),
    Turn("customer", "Toko buka jam berapa ya?"),
)
REQUEST = AiRequest(
    business_name="Toko Maju Jaya",
    customer_name="Budi",
    history=HISTORY,
    faq=FAQ,
    lead_class="warm",
)


@pytest.fixture(scope="module")
def server():
    with FakeLlm() as fake:
        yield fake


@pytest.fixture
def llm(server: FakeLlm) -> FakeLlm:
    server.reset()
    return server


@pytest.fixture
def ai(llm: FakeLlm):
    responder = OpenAICompatibleResponder(llm.base_url, llm.api_key, "gpt-4o-mini", timeout=2)
    yield responder
    responder.close()


def unavailable(responder: OpenAICompatibleResponder, request: AiRequest = REQUEST) -> str:
    with pytest.raises(AiUnavailable) as caught:
        responder.answer(request)
    return caught.value.reason


# What is asked.


def test_a_good_answer_comes_back_with_its_confidence(ai, llm: FakeLlm):
    llm.answer_with(reply="Toko buka Senin-Jumat jam 08.00-17.00 kak.", confidence=0.92)

    answer = ai.answer(REQUEST)

    assert answer == AiAnswer(
        text="Toko buka Senin-Jumat jam 08.00-17.00 kak.", confidence=0.92, handoff=False, model=llm.model
    )


def test_the_request_carries_model_faq_history_and_key(ai, llm: FakeLlm):
    ai.answer(REQUEST)

    [request] = llm.requests
    body: dict[str, Any] = request["body"]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == f"Bearer {llm.api_key}"
    assert body["model"] == "gpt-4o-mini"
    assert body["temperature"] == 0.2
    assert body["response_format"] == {"type": "json_object"}
    system, *conversation = body["messages"]
    assert system["role"] == "system"
    for item in FAQ:
        assert item.question in system["content"]
        assert item.answer in system["content"]
    assert "Toko Maju Jaya" in system["content"]
    assert "Budi" in system["content"]
    assert '"reply"' in system["content"] and '"confidence"' in system["content"]
    assert conversation == [
        {"role": "user", "content": "Halo, mau tanya"},
        {"role": "assistant", "content": "Halo kak, silakan"},
        {"role": "user", "content": "Toko buka jam berapa ya?"},
    ]


def test_no_key_no_authorization_header():
    with FakeLlm(api_key=None) as fake:
        responder = OpenAICompatibleResponder(fake.base_url + "/", None, "local-model", timeout=2)
        assert responder.answer(REQUEST).text == DEFAULT_REPLY
    assert "authorization" not in fake.requests[0]["headers"]
    assert fake.requests[0]["path"] == "/v1/chat/completions"  # the trailing slash is stripped


def test_an_empty_faq_tells_the_model_to_hand_off(ai, llm: FakeLlm):
    ai.answer(AiRequest("Toko Maju Jaya", None, HISTORY[-1:], ()))

    system = llm.messages()[0]["content"]
    assert "hand off" in system
    assert "customer's name" not in system


def test_a_turn_with_an_unknown_role_is_a_programming_error():
    with pytest.raises(ValueError, match="role"):
        Turn("user", "Halo")


# What the model says: returned as it is, the caller decides.


def test_low_confidence_is_returned_as_such(ai, llm: FakeLlm):
    llm.answer_with(reply="Mungkin bisa kak, nanti kami cek.", confidence=0.3)

    answer = ai.answer(REQUEST)

    assert (answer.confidence, answer.handoff) == (0.3, False)


def test_handoff_flag_is_returned(ai, llm: FakeLlm):
    llm.answer_with(reply="Baik kak, tim kami akan segera membantu.", confidence=0.2, handoff=True)

    answer = ai.answer(REQUEST)

    assert answer.handoff is True
    assert answer.text == "Baik kak, tim kami akan segera membantu."


def test_fenced_json_is_accepted(ai, llm: FakeLlm):
    llm.answer_raw('```json\n{"reply": "Buka jam 08.00 kak", "confidence": 0.8, "handoff": false}\n```')

    assert ai.answer(REQUEST) == AiAnswer("Buka jam 08.00 kak", 0.8, False, llm.model)


def test_buttons_and_a_list_the_model_offers_come_back_as_written(ai, llm: FakeLlm):
    llm.answer_raw(
        '{"reply": "Mau dikirim pakai apa kak?", "confidence": 0.9, "handoff": false,'
        ' "buttons": ["JNE", {"title": "SiCepat"}]}'
    )
    assert ai.answer(REQUEST).choices == AiChoices("buttons", (("JNE", None), ("SiCepat", None)))

    llm.answer_raw(
        '{"reply": "Pilih ukuran kak", "confidence": 0.9, "handoff": false, "list": {"button": "Ukuran",'
        ' "rows": ["S", {"title": "M", "description": "lingkar dada 100 cm"}]}}'
    )
    assert ai.answer(REQUEST).choices == AiChoices(
        "list", (("S", None), ("M", "lingkar dada 100 cm")), "Ukuran"
    )


@pytest.mark.parametrize(
    "extra",
    [
        '"buttons": "JNE"',
        '"buttons": [1, 2]',
        '"buttons": []',
        '"list": {"rows": ["S"]}',
        '"list": {"button": "Ukuran", "rows": [{"name": "S"}]}',
    ],
)
def test_choices_of_another_shape_leave_a_plain_reply(ai, llm: FakeLlm, extra):
    llm.answer_raw('{"reply": "Bisa kak", "confidence": 0.9, "handoff": false, ' + extra + "}")

    answer = ai.answer(REQUEST)

    assert (answer.text, answer.choices) == ("Bisa kak", None)


@pytest.mark.parametrize(("given", "kept"), [(1.7, 1.0), (-0.5, 0.0), ("0.75", 0.75), ("high", 0.0)])
def test_confidence_is_clamped_and_unreadable_counts_as_none(ai, llm: FakeLlm, given, kept):
    llm.answer_with(reply="Buka jam 08.00 kak", confidence=given)

    assert ai.answer(REQUEST).confidence == kept


def test_missing_confidence_counts_as_none(ai, llm: FakeLlm):
    llm.answer_raw('{"reply": "Buka jam 08.00 kak"}')

    assert (ai.answer(REQUEST).confidence, ai.answer(REQUEST).handoff) == (0.0, False)


@pytest.mark.parametrize(
    "content",
    [
        "Halo kak, toko buka jam 08.00.",  # prose, not JSON
        '{"reply": "Buka jam 08.00 kak", "confidence": 0.9',  # cut off
        '["Buka jam 08.00 kak"]',  # JSON, not an object
    ],
)
def test_content_that_is_not_the_json_asked_for_is_unavailable(ai, llm: FakeLlm, content):
    llm.answer_raw(content)

    assert unavailable(ai) == "answer was not the JSON we asked for"


@pytest.mark.parametrize("content", ['{"confidence": 0.9, "handoff": false}', '{"reply": "  "}'])
def test_a_missing_or_empty_reply_is_unavailable(ai, llm: FakeLlm, content):
    llm.answer_raw(content)

    assert unavailable(ai) == "answer had no reply"


# Failures: every one is AiUnavailable, with a reason fit to store, and nothing is retried.


@pytest.mark.parametrize("status", [500, 503, 429, 400])
def test_http_errors_are_unavailable_naming_the_status(ai, llm: FakeLlm, status):
    llm.fail_next(status)

    reason = unavailable(ai)

    assert reason.startswith(f"HTTP {status}")
    assert len(llm.requests) == 1  # no retry: the caller hands off instead


def test_a_wrong_key_is_unavailable_without_the_key_in_reason_or_logs(llm: FakeLlm, caplog):
    key = "sk-wrong-key-0123456789abcdef"
    responder = OpenAICompatibleResponder(llm.base_url, key, "gpt-4o-mini", timeout=2)

    with caplog.at_level(logging.DEBUG):
        reason = unavailable(responder)

    assert reason == "HTTP 401 (invalid_api_key)"
    for record in caplog.records:
        assert key not in str(record.__dict__) and key[-4:] not in str(record.__dict__)


def test_logs_carry_no_customer_text(ai, llm: FakeLlm, caplog):
    llm.answer_with(reply="Toko buka jam 08.00 kak.", confidence=0.9)

    with caplog.at_level(logging.INFO, logger="integrations.ai"):
        ai.answer(REQUEST)
        llm.answer_raw("Toko buka jam 08.00 kak.")
        unavailable(ai)

    assert [r.levelno for r in caplog.records] == [logging.INFO, logging.WARNING]
    for record in caplog.records:
        logged = str(record.__dict__)
        assert "Toko buka" not in logged and "jam berapa" not in logged and "Budi" not in logged


def test_an_answer_later_than_the_timeout_is_unavailable(llm: FakeLlm):
    llm.delay_next(3)
    responder = OpenAICompatibleResponder(llm.base_url, llm.api_key, "gpt-4o-mini", timeout=0.5)

    assert unavailable(responder) == "timed out after 0.5s"
    assert responder.answer(REQUEST).text == DEFAULT_REPLY  # the abandoned connection is not reused


def test_a_trickled_answer_cannot_outlast_the_deadline(llm: FakeLlm):
    """Headers at once, then a byte every few milliseconds: each socket read is quick, so only a
    deadline over the whole call stops it (left alone, the answer would arrive after 3 s)."""
    llm.trickle_next(3)
    responder = OpenAICompatibleResponder(llm.base_url, llm.api_key, "gpt-4o-mini", timeout=0.7)

    assert unavailable(responder) == "timed out after 0.7s"
    assert responder.answer(REQUEST).text == DEFAULT_REPLY  # the abandoned connection is not reused


def test_a_refused_connection_is_unavailable():
    responder = OpenAICompatibleResponder(f"http://127.0.0.1:{free_port()}/v1", "key", "m", timeout=2)

    assert unavailable(responder) == "connection refused"


def test_a_dropped_connection_is_unavailable(ai, llm: FakeLlm):
    llm.drop_next()

    assert unavailable(ai).startswith("connection dropped")


class OddServer(FakeServer):
    """Answers every request with one fixed reply: what a proxy or a half-compatible server says."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        super().__init__()

    def handle(self, path: str, headers: dict[str, str], body: Any) -> Reply:
        return self.reply


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply(200, b"<html>Welcome to nginx</html>"), "response was not JSON"),
        (Reply(200, {"id": "x", "choices": []}), "response had no choices[0].message"),
        (
            Reply(200, {"choices": [{"message": {"role": "assistant", "content": None, "refusal": "no"}}]}),
            "the model refused to answer",
        ),
        (Reply(502, b"502 Bad Gateway"), "HTTP 502"),
        (Reply(302, b"", headers={"Location": "/login"}), "HTTP 302"),
    ],
)
def test_a_body_of_the_wrong_shape_is_unavailable(reply, reason):
    with OddServer(reply) as odd:
        responder = OpenAICompatibleResponder(f"{odd.root_url}/v1", "key", "m", timeout=2)
        assert unavailable(responder) == reason


# The settings.


def test_ai_for_is_none_without_a_base_url():
    assert ai_for(Settings(ai_base_url=None)) is None
    assert ai_for(Settings(ai_base_url="  ")) is None


def test_ai_for_builds_the_responder_with_the_default_model(llm: FakeLlm):
    responder = ai_for(Settings(ai_base_url=llm.base_url, ai_api_key=llm.api_key, ai_timeout_seconds=3))

    assert isinstance(responder, OpenAICompatibleResponder)
    assert (responder.model, responder.timeout) == (DEFAULT_MODEL, 3.0)
    assert responder.answer(REQUEST).confidence == 0.9
    assert llm.requests[0]["body"]["model"] == "gpt-4o-mini"
    named = ai_for(Settings(ai_base_url=llm.base_url, ai_model="llama3.1:8b"))
    assert isinstance(named, OpenAICompatibleResponder) and named.model == "llama3.1:8b"


def test_ai_for_refuses_a_base_url_that_is_not_http():
    with pytest.raises(ValueError, match="AI_BASE_URL"):
        ai_for(Settings(ai_base_url="api.openai.com/v1"))
