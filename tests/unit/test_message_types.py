"""Inbound interactive answers are stored with the text a person reads and routing sees."""

from __future__ import annotations

import json

import pytest

from domain.message_types import describe, flow_answers

FLOW_TOKEN = "survey.42.0123456789abcdef0123456789abcdef"


def interactive(kind: str, reply: dict) -> dict:
    return {
        "type": "interactive",
        "interactive": {"type": kind, kind: reply},
        "context": {"id": "wamid.OURS"},
    }


@pytest.mark.parametrize(
    ("message", "text"),
    [
        (interactive("button_reply", {"id": "arrived:7", "title": "Sudah sampai"}), "Sudah sampai"),
        (
            interactive("list_reply", {"id": "ship_exp", "title": "Express", "description": "Besok"}),
            "Express",
        ),
        ({"type": "button", "button": {"payload": "stop", "text": "Berhenti"}}, "Berhenti"),
        (
            interactive(
                "nfm_reply",
                {
                    "name": "flow",
                    "body": "Sent",
                    "response_json": json.dumps(
                        {"rating": "4", "comment": "Cepat", "flow_token": FLOW_TOKEN}
                    ),
                },
            ),
            "rating: 4, comment: Cepat",
        ),
        (interactive("nfm_reply", {"name": "flow", "body": "Sent", "response_json": "not json"}), "Sent"),
    ],
)
def test_an_interactive_answer_reads_as_the_customers_choice(message, text):
    content = describe(message)
    assert (content.type, content.text, content.reply_to) == (
        message["type"],
        text,
        message.get("context", {}).get("id"),
    )


def test_a_flow_completion_keeps_the_answers_without_our_token():
    reply = {"response_json": json.dumps({"name": "Budi", "flow_token": FLOW_TOKEN})}
    assert flow_answers(reply) == {"name": "Budi"}
    assert flow_answers({"response_json": "[1]"}) == {}
