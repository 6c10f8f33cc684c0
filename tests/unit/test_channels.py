"""Channels without services: secrets at rest, which channel a webhook is for and which secret
must sign it, the per-channel send-rate limits, and the gateway client of a stored channel."""

from __future__ import annotations

import pytest

from integrations.whatsapp import CloudApiGateway, WahaGateway
from integrations.whatsapp.rate_limit import limiter
from models import Channel
from models.inbox import PENDING, UNKNOWN_CHANNEL
from models.secret_box import SecretKeyMissing, SecretUnreadable, decrypt, encrypt
from pipeline.channels import ChannelError, gateway_of
from producers import channels
from producers.channels import UNKNOWN, Known, Route
from producers.rejections import Rejected
from producers.whatsapp import Envelope, inbox_events
from settings import Settings, settings
from testkit import samples


@pytest.fixture
def secret_key(monkeypatch):
    monkeypatch.setattr(settings, "secret_key", "unit-test-secret-key")


def test_secrets_are_encrypted_at_rest_and_need_the_same_key(secret_key, monkeypatch):
    token = encrypt("app-secret-of-jakarta")
    assert "app-secret-of-jakarta" not in token and token.startswith("gAAAA")
    assert encrypt("app-secret-of-jakarta") != token  # a fresh IV each time
    assert decrypt(token) == "app-secret-of-jakarta"
    monkeypatch.setattr(settings, "secret_key", "another-key")
    with pytest.raises(SecretUnreadable):
        decrypt(token)
    monkeypatch.setattr(settings, "secret_key", None)
    with pytest.raises(SecretKeyMissing, match="SECRET_KEY"):
        encrypt("x")


def test_creating_a_channel_without_secret_key_is_refused_naming_it(monkeypatch):
    from pipeline.channels import _set_secrets

    monkeypatch.setattr(settings, "secret_key", None)
    with pytest.raises(ChannelError) as refused:
        _set_secrets(Channel(kind="cloud"), {"access_token": "t"})
    assert refused.value.status == 503 and "SECRET_KEY" in str(refused.value)


A = Route(1, True, "secret-a", "the app secret of channel 'a'")
B = Route(2, True, "secret-b", "the app secret of channel 'b'")
KNOWN = Known(by_phone_number_id={"111": A, "222": B}, by_session={"shop": A}, names=frozenset({"a", "b"}))
CONFIG = Settings(whatsapp_phone_number_id="999", whatsapp_app_secret="settings-secret", waha_session=None)


def signed(secret: str) -> str:
    """The signature header of the body b"{}" (what ``verify`` below checks)."""
    return samples.encode({}, secret)[1]["X-Hub-Signature-256"]


def verify(routes, header, *, every=("secret-a", "secret-b", "settings-secret"), development_mode=False):
    channels.verify(
        routes, list(every), b"{}", header, header="X-Hub-Signature-256", development_mode=development_mode
    )


def test_routes_by_phone_number_id_and_session():
    assert channels.cloud_route(KNOWN, "111", CONFIG) is A
    settings_route = channels.cloud_route(KNOWN, "999", CONFIG)
    assert (settings_route.channel_id, settings_route.accepted, settings_route.secret) == (
        None,
        True,
        "settings-secret",
    )
    assert channels.cloud_route(KNOWN, "333", CONFIG) is UNKNOWN
    assert channels.cloud_route(KNOWN, None, CONFIG) is UNKNOWN
    assert channels.waha_route(KNOWN, "shop", CONFIG) is A
    assert channels.waha_route(KNOWN, "default", CONFIG).channel_id is None  # WAHA_SESSION unset
    assert channels.waha_route(KNOWN, "other", CONFIG) is UNKNOWN
    assert channels.is_channel_name(KNOWN, "a") and channels.is_channel_name(KNOWN, "settings")
    assert not channels.is_channel_name(KNOWN, "c")


def test_a_request_must_be_signed_with_the_secret_of_every_channel_it_addresses():
    verify([A], signed("secret-a"))
    with pytest.raises(Rejected) as refused:
        verify([B], signed("secret-a"))  # signed for A, addressed to B
    assert refused.value.status == 401
    with pytest.raises(Rejected):
        verify([A, B], signed("secret-a"))
    with pytest.raises(Rejected):
        verify([A], None)
    # For no channel we know: any secret we know will do, no secret will not.
    verify([UNKNOWN], signed("secret-b"))
    verify([UNKNOWN], signed("settings-secret"))
    with pytest.raises(Rejected):
        verify([UNKNOWN], signed("guessed"))
    with pytest.raises(Rejected):
        verify([UNKNOWN], None)
    # The settings channel without its secret: closed (503 naming it) unless development mode.
    open_settings = Route(None, True, None, "WHATSAPP_APP_SECRET")
    with pytest.raises(Rejected) as closed:
        verify([open_settings], None)
    assert closed.value.status == 503 and "WHATSAPP_APP_SECRET" in closed.value.error
    verify([open_settings], None, development_mode=True)


def test_events_for_no_enabled_channel_are_kept_as_unknown_channel():
    disabled = Route(3, False, "secret-c", "c")
    payload = samples.envelope(messages=[samples.text("6281212345678", "Halo")])
    metadata = payload["entry"][0]["changes"][0]["value"]["metadata"]
    envelope = Envelope.model_validate(payload)
    for route, state, channel_id in (
        (A, PENDING, 1),
        (UNKNOWN, UNKNOWN_CHANNEL, None),
        (disabled, UNKNOWN_CHANNEL, None),
    ):
        (event,) = inbox_events(envelope, lambda pnid, route=route: route)
        assert (event.state, event.payload.get("channel_id")) == (state, channel_id)
    (plain,) = inbox_events(envelope)  # no channel stored: as before
    assert plain.state == PENDING and "channel_id" not in plain.payload
    assert metadata["phone_number_id"]


def test_each_channel_has_its_own_send_rate_limit():
    assert limiter().key == "wacrm:outbound:rate"  # the settings channel: the key of old
    assert limiter(None) is limiter()
    assert limiter(7).key == "wacrm:outbound:rate:channel:7"
    assert limiter(7) is limiter(7) and limiter(7) is not limiter(8)


def test_a_stored_channel_sends_through_its_own_number_and_session(secret_key):
    cloud = Channel(
        name="a", kind="cloud", phone_number_id="1100000000001", access_token_secret=encrypt("token-a")
    )
    client = gateway_of(cloud)
    assert isinstance(client, CloudApiGateway)
    assert client.url.endswith("/1100000000001/messages")
    assert client._headers == {"Authorization": "Bearer token-a"}
    waha = Channel(
        name="w", kind="waha", waha_url="http://waha:3000", session="shop", api_key_secret=encrypt("key-w")
    )
    client = gateway_of(waha)
    assert isinstance(client, WahaGateway)
    assert (client.url, client.session_name, client._headers) == (
        "http://waha:3000/api/sendText",
        "shop",
        {"X-Api-Key": "key-w"},
    )
