"""The AI agent's reply as a rich message: when the model offers the customer a few choices
(``buttons`` or a ``list`` in its JSON, docs/rich-messages.md "The AI agent"), the customer gets
WhatsApp reply buttons or a list; choices WhatsApp would refuse leave a plain text reply.

Webhook -> ingest -> routing worker with the AI agent on -> the fake LLM (real HTTP) -> outbox ->
the fake Cloud API. Real Redis, PostgreSQL and Celery workers.
"""

from __future__ import annotations

import json

from tests.system import test_routing
from tests.system.conftest import AI_ENV
from tests.system.test_routing import decisions, settled, write

# The routing tests' fixtures: an admin API caller, and a team of agents for a handover.
api, team = test_routing.api, test_routing.team

BUDI = "6281212345678"


def bodies_to(cloud_api, wa_id: str) -> list[dict]:
    return [body for body in cloud_api.accepted if body["to"] == wa_id]


def model_says(llm, **fields) -> None:
    llm.answer_raw(json.dumps({"confidence": 0.95, "handoff": False, **fields}))


def test_choices_the_ai_offers_reach_the_customer_as_reply_buttons(
    client, api, team, cloud_api, routing, llm
):
    routing.use(**AI_ENV)
    model_says(llm, reply="Mau dikirim pakai kurir apa kak?", buttons=["JNE", "SiCepat", "Ambil di toko"])
    write(client, BUDI, "bisa kirim ke Papua?")
    settled()
    [sent] = bodies_to(cloud_api, BUDI)
    assert sent["type"] == "interactive"
    assert sent["interactive"] == {
        "type": "button",
        "body": {"text": "Mau dikirim pakai kurir apa kak?"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "choice:1", "title": "JNE"}},
                {"type": "reply", "reply": {"id": "choice:2", "title": "SiCepat"}},
                {"type": "reply", "reply": {"id": "choice:3", "title": "Ambil di toko"}},
            ]
        },
    }
    [decision] = decisions(api, BUDI)
    assert decision["responder"] == "ai"
    # The model is told it may offer them.
    assert '"buttons"' in llm.messages()[0]["content"]


def test_a_list_the_ai_offers_goes_as_a_list_message(client, api, team, cloud_api, routing, llm):
    routing.use(**AI_ENV)
    rows = [{"title": "S"}, {"title": "M", "description": "lingkar dada 100 cm"}]
    model_says(llm, reply="Pilih ukurannya kak", list={"button": "Ukuran", "rows": rows})
    write(client, BUDI, "kaosnya ada ukuran apa?")
    settled()
    [sent] = bodies_to(cloud_api, BUDI)
    assert sent["interactive"]["type"] == "list"
    assert sent["interactive"]["action"] == {
        "button": "Ukuran",
        "sections": [
            {
                "rows": [
                    {"id": "choice:1", "title": "S"},
                    {"id": "choice:2", "title": "M", "description": "lingkar dada 100 cm"},
                ]
            }
        ],
    }


def test_choices_whatsapp_would_refuse_leave_a_plain_text_reply(client, api, team, cloud_api, routing, llm):
    routing.use(**AI_ENV)
    too_many = ["JNE", "SiCepat", "J&T", "Ambil di toko"]  # WhatsApp takes three buttons at most
    model_says(llm, reply="Bisa kak, kami kirim ke seluruh Indonesia.", buttons=too_many)
    write(client, BUDI, "bisa kirim ke Papua?")
    settled()
    [sent] = bodies_to(cloud_api, BUDI)
    assert sent["type"] == "text"
    assert sent["text"]["body"] == "Bisa kak, kami kirim ke seluruh Indonesia."
    [decision] = decisions(api, BUDI)
    assert decision["responder"] == "ai"
    assert any("its buttons went as plain text" in reason for reason in decision["reasons"])
