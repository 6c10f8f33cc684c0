"""The WAHA client's labels API against the fake WAHA over real HTTP: the session's labels,
creating one, setting a chat's whole set; failures classified as for sends."""

from __future__ import annotations

import pytest

from integrations.whatsapp import PermanentError, TransientError, WahaGateway
from testkit.fakes.waha import FakeWaha
from testkit.processes import free_port

CHAT = "6281212345678@c.us"


@pytest.fixture
def waha():
    with FakeWaha() as fake:
        yield fake


def test_labels_are_listed_created_and_set_as_the_chats_whole_set(waha: FakeWaha):
    waha.add_label("toko", "1", "Lead")
    gateway = WahaGateway(waha.url, waha.api_key, "toko", timeout=2)

    assert [(label.id, label.name) for label in gateway.labels()] == [("1", "Lead")]
    made = gateway.create_label("Siap beli")
    assert (made.id, made.name) == ("2", "Siap beli")
    gateway.set_chat_labels(CHAT, ["1", "2"])
    gateway.set_chat_labels(CHAT, ["2"])

    assert waha.label_puts() == [("toko", CHAT, ["1", "2"]), ("toko", CHAT, ["2"])]
    assert waha.chat_labels[("toko", CHAT)] == ["2"]
    put = next(r for r in waha.requests if r["method"] == "PUT")
    assert put["path"] == "/api/toko/labels/chats/6281212345678%40c.us"  # the @ escaped
    assert put["body"] == {"labels": [{"id": "1"}, {"id": "2"}]}
    assert put["headers"]["x-api-key"] == waha.api_key


def test_a_busy_waha_is_transient_and_an_unknown_label_permanent(waha: FakeWaha):
    gateway = WahaGateway(waha.url, waha.api_key, "toko", timeout=2)
    waha.fail_next(503)
    with pytest.raises(TransientError):
        gateway.set_chat_labels(CHAT, [])
    with pytest.raises(PermanentError, match="no label 9"):
        gateway.set_chat_labels(CHAT, ["9"])
    assert waha.label_puts() == []


def test_waha_not_answering_is_transient():
    gateway = WahaGateway(f"http://127.0.0.1:{free_port()}", None, "toko", timeout=2)
    with pytest.raises(TransientError):
        gateway.labels()
