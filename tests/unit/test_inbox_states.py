"""A stored state (the Odoo sync, an order's stage, an order message's status, the reader's
role) is shown in the page's language, not as the raw value the API returns."""

from __future__ import annotations

from types import SimpleNamespace

from web.render import environment


def panel(language: str) -> str:
    view = SimpleNamespace(
        contact={"name": "Siti", "crm": {"state": "pending"}, "labels": [], "conversations": []},
        conversation={"id": 1},
        team="sales",
        known_labels=[],
        odoo_links={"partner": "https://odoo.example/odoo/contacts/7", "leads": []},
        orders=[
            {
                "order_id": "A-1",
                "stage": "shipped",
                "messages": [{"title": "Order Delivery", "status": "blocked_window"}],
            }
        ],
        decisions=[],
        surveys=[],
        flow_answers=[],
    )
    return environment(language).get_template("_panel.html").render(view=view, user={"csrf": "x"})


def test_the_odoo_sync_state_and_the_order_states_read_in_indonesian():
    html = panel("id")
    assert '<span class="sync-state">menunggu sinkronisasi</span>' in html
    assert "dikirim" in html and "tidak terkirim: jendela balasan tertutup" in html
    assert "pending" not in html and "blocked_window<" not in html


def test_and_in_english():
    html = panel("en")
    assert '<span class="sync-state">waiting to sync</span>' in html
    assert "shipped" in html and "not sent: the reply window is closed" in html
