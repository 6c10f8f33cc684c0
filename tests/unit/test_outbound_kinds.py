"""Every outbound kind is checked against WhatsApp's limits before it is queued: a body Meta would
refuse is refused here, naming the field a client wrote."""

from __future__ import annotations

import pytest

from domain.outbound_kinds import (
    NotSendable,
    check,
    choices_body,
    media_at,
    media_slot,
    readable_text,
    with_media_at,
)


def buttons(*titles: str) -> dict:
    replies = [{"type": "reply", "reply": {"id": f"b{i}", "title": t}} for i, t in enumerate(titles)]
    return {
        "type": "interactive",
        "interactive": {"type": "button", "body": {"text": "Pilih"}, "action": {"buttons": replies}},
    }


def rows(count: int, title: str = "Reguler") -> dict:
    section = {"title": "Kirim", "rows": [{"id": f"r{i}", "title": title} for i in range(count)]}
    action = {"button": "Lihat", "sections": [section]}
    return {
        "type": "interactive",
        "interactive": {"type": "list", "body": {"text": "Menu"}, "action": action},
    }


FLOW = {
    "flow_message_version": "3",
    "flow_name": "lead_form",
    "flow_cta": "Daftar",
    "flow_action": "navigate",
    "flow_action_payload": {"screen": "LEAD"},
}

SENDABLE = [
    {"type": "text", "text": {"body": "Halo kak", "preview_url": True}},
    {"type": "image", "image": {"link": "https://cdn.example.com/p.jpg", "caption": "Katalog Juni"}},
    {"type": "document", "document": {"id": "1013859600285441", "filename": "invoice-42.pdf"}},
    {"type": "audio", "audio": {"id": "55", "voice": True}},
    {"type": "sticker", "sticker": {"id": "56"}},
    {"type": "location", "location": {"latitude": -6.2, "longitude": 106.8, "name": "Toko Pusat"}},
    {"type": "contacts", "contacts": [{"name": {"formatted_name": "Budi", "first_name": "Budi"}}]},
    {"type": "reaction", "reaction": {"message_id": "wamid.X", "emoji": "👍"}},
    {"type": "text", "text": {"body": "Siap"}, "context": {"message_id": "wamid.Q"}},
    buttons("Ya, kirim", "Ubah alamat", "Batal"),
    rows(10),
    {
        "type": "interactive",
        "interactive": {
            "type": "cta_url",
            "header": {"type": "image", "image": {"link": "https://cdn.example.com/b.png"}},
            "body": {"text": "Lacak paket Anda"},
            "action": {
                "name": "cta_url",
                "parameters": {"display_text": "Lacak", "url": "https://x.id/t/42"},
            },
        },
    },
    {
        "type": "interactive",
        "interactive": {
            "type": "flow",
            "body": {"text": "Isi"},
            "action": {"name": "flow", "parameters": FLOW},
        },
    },
    {"type": "template", "template": {"name": "order_shipped", "language": {"code": "id"}, "components": []}},
]


@pytest.mark.parametrize("body", SENDABLE, ids=lambda body: body["type"])
def test_every_documented_kind_passes_unchanged(body):
    assert check(body) == body  # the gateway receives exactly what the client wrote


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        (buttons("A", "B", "C", "D"), "interactive.action.buttons", "at most 3"),
        (buttons("x" * 21), "interactive.action.buttons[0].reply.title", "at most 20"),
        (buttons("Sama", "Sama"), "interactive.action", "differ"),
        (rows(11), "interactive.action", "at most 10 rows"),
        (rows(1, "x" * 25), "interactive.action.sections[0].rows[0].title", "at most 24"),
        ({"type": "image", "image": {"caption": "no source"}}, "image", "exactly one of id"),
        (
            {"type": "image", "image": {"link": "https://x/p.jpg", "captoin": "typo"}},
            "image.captoin",
            "Extra",
        ),
        ({"type": "image", "image": {"link": "http://x/p.jpg"}}, "image.link", "https"),
        ({"type": "image", "image": {"id": "1", "caption": "x" * 1025}}, "image.caption", "1024"),
        ({"type": "sticker", "sticker": {"id": "1", "caption": "hi"}}, "sticker.caption", "no caption"),
        ({"type": "text", "text": {"body": "x" * 4097}}, "text.body", "4096"),
        ({"type": "location", "location": {"latitude": 91, "longitude": 0}}, "location.latitude", "90"),
        ({"type": "contacts", "contacts": [{"phones": []}]}, "contacts[0].name", "required"),
        (
            {
                "type": "reaction",
                "reaction": {"message_id": "w", "emoji": "👍"},
                "context": {"message_id": "w"},
            },
            "context",
            "Extra",
        ),
        (
            {"type": "interactive", "interactive": {"type": "carousel", "body": {"text": "x"}}},
            "interactive.type",
            "carousel",
        ),
        ({"type": "fax"}, "type", "fax"),
        (
            {"type": "template", "template": {"name": "Order Shipped", "language": {"code": "id"}}},
            "template.name",
            "pattern",
        ),
    ],
)
def test_a_body_whatsapp_would_refuse_is_refused_naming_the_field(body, field, problem):
    with pytest.raises(NotSendable) as refused:
        check(body)
    assert refused.value.field == field
    assert problem in refused.value.problem


def test_a_flow_message_names_its_flow_once_and_a_navigate_names_its_screen():
    body = SENDABLE[12]
    both = {**FLOW, "flow_id": "123"}
    no_screen = {**FLOW, "flow_action_payload": None}
    for parameters, problem in ((both, "exactly one of flow_id"), (no_screen, "screen")):
        interactive = {**body["interactive"], "action": {"name": "flow", "parameters": parameters}}
        with pytest.raises(NotSendable, match=problem):
            check({"type": "interactive", "interactive": interactive})


def test_waha_refuses_what_it_cannot_send_naming_the_gateway():
    assert check(SENDABLE[1], gateway="waha")["image"]["caption"] == "Katalog Juni"
    for body in (buttons("Ya"), SENDABLE[4], SENDABLE[13]):
        with pytest.raises(NotSendable, match="WAHA"):
            check(body, gateway="waha")


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (SENDABLE[0], "Halo kak"),
        (SENDABLE[1], "Katalog Juni"),
        (SENDABLE[2], "invoice-42.pdf"),
        (SENDABLE[4], "[sticker]"),
        (SENDABLE[5], "Toko Pusat"),
        (SENDABLE[6], "Budi"),
        (SENDABLE[9], "Pilih"),
        (SENDABLE[13], "[template order_shipped]"),
    ],
)
def test_every_kind_has_a_text_a_person_reads(body, text):
    assert readable_text(check(body)) == text


def test_the_media_of_a_header_or_a_template_header_is_found_and_replaced_alone():
    header = buttons("Ya")
    header["interactive"]["header"] = {"type": "image", "image": {"id": "ours"}}
    template = {
        "type": "template",
        "template": {
            "name": "promo",
            "language": {"code": "id"},
            "components": [
                {"type": "body", "parameters": [{"type": "text", "text": "Budi"}]},
                {
                    "type": "HEADER",
                    "parameters": [{"type": "document", "document": {"id": "ours", "filename": "a.pdf"}}],
                },
            ],
        },
    }
    for body, kind, field in (
        (header, "image", "interactive.header.image"),
        (template, "document", "template.components[1].parameters[0].document"),
        ({"type": "video", "video": {"id": "ours"}}, "video", "video"),
    ):
        slot = media_slot(check(body))
        assert (slot.kind, slot.field) == (kind, field)
        replaced = with_media_at(body, slot, {**media_at(body, slot), "id": "999"})
        assert media_at(replaced, slot)["id"] == "999"
        assert media_at(body, slot)["id"] == "ours"  # the stored body is untouched
    assert media_slot(buttons("Ya")) is None
    assert media_slot({"type": "text", "text": {"body": "x"}}) is None


def test_choices_become_buttons_or_a_list_within_whatsapps_limits():
    buttons = check(choices_body("Kirim pakai?", "buttons", [("JNE", None), ("SiCepat", None)]))
    assert buttons["interactive"]["action"]["buttons"][1] == {
        "type": "reply",
        "reply": {"id": "choice:2", "title": "SiCepat"},
    }
    listed = check(choices_body("Ukuran?", "list", [("S", None), ("M", "lebih besar")], "Ukuran"))
    assert listed["interactive"]["action"] == {
        "button": "Ukuran",
        "sections": [
            {
                "rows": [
                    {"id": "choice:1", "title": "S"},
                    {"id": "choice:2", "title": "M", "description": "lebih besar"},
                ]
            }
        ],
    }
    with pytest.raises(NotSendable, match=r"^interactive.action.buttons"):
        check(choices_body("Pilih", "buttons", [(str(n), None) for n in range(4)]))
    with pytest.raises(NotSendable, match=r"^interactive.action.button:"):
        check(choices_body("Pilih", "list", [("S", None)], ""))
