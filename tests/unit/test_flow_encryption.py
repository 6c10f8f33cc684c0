"""The Flows data-endpoint cryptography, as Meta does it, and the signed flow tokens."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from domain.flow_encryption import (
    CannotDecrypt,
    decrypt_request,
    decrypt_response,
    encrypt_request,
    encrypt_response,
    load_private_key,
)
from domain.flow_tokens import make_token, read_token

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_a_request_encrypted_as_meta_does_is_read_and_answered_under_the_flipped_iv():
    body, aes_key, iv = encrypt_request({"version": "3.0", "action": "ping"}, KEY.public_key())
    request = decrypt_request(body, KEY)
    assert request.payload == {"version": "3.0", "action": "ping"}
    assert len(request.aes_key) == 16  # AES-128, as Meta sends
    answer = encrypt_response({"data": {"status": "active"}}, request)
    assert decrypt_response(answer, aes_key, iv) == {"data": {"status": "active"}}
    # Under the request's own IV (not flipped) the answer does not open.
    flipped = bytes(b ^ 0xFF for b in iv)
    with pytest.raises(InvalidTag):
        decrypt_response(answer, aes_key, flipped)


def test_a_request_for_another_key_or_altered_cannot_be_decrypted():
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    body, _, _ = encrypt_request({"action": "ping"}, other.public_key())
    with pytest.raises(CannotDecrypt):
        decrypt_request(body, KEY)
    body, _, _ = encrypt_request({"action": "ping"}, KEY.public_key())
    sealed = bytearray(base64.b64decode(body["encrypted_flow_data"]))
    sealed[-1] ^= 1  # the GCM tag no longer matches
    with pytest.raises(CannotDecrypt):
        decrypt_request({**body, "encrypted_flow_data": base64.b64encode(sealed).decode()}, KEY)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ([], "not a JSON object"),
        ({"encrypted_flow_data": "x", "initial_vector": "x"}, "encrypted_aes_key is missing"),
        ({"encrypted_aes_key": "%%%", "encrypted_flow_data": "x", "initial_vector": "x"}, "not base64"),
    ],
)
def test_malformed_bodies_say_what_is_wrong(body, problem):
    with pytest.raises(CannotDecrypt, match=problem):
        decrypt_request(body, KEY)


def test_the_private_key_loads_from_pem_text_or_a_file_with_its_passphrase(tmp_path):
    pem = KEY.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"rahasia"),
    )
    path = tmp_path / "flows.pem"
    path.write_bytes(pem)
    for source in (pem.decode(), str(path)):
        loaded = load_private_key(source, "rahasia")
        assert loaded.public_key().public_numbers() == KEY.public_key().public_numbers()
    with pytest.raises(ValueError):
        load_private_key.__wrapped__(pem.decode(), "wrong")


def test_a_flow_token_names_its_flow_and_customer_and_cannot_be_forged():
    key, other_key = b"k" * 32, b"o" * 32
    token = make_token(key, "lead_form", 42)
    found = read_token(key, token)
    assert (found.flow, found.contact_id) == ("lead_form", 42)
    assert read_token(other_key, token) is None  # signed under a rotated key
    forged = token.replace(".42.", ".43.")
    assert read_token(key, forged) is None
    for junk in (None, "", "unused", 42, token + "0"):
        assert read_token(key, junk) is None


def test_every_flow_json_has_a_handler_and_its_screens_are_the_ones_the_handler_answers():
    from api.flows import FLOWS_DIR, shipped_flows
    from producers.flow_screens import FLOWS

    assert shipped_flows() == sorted(FLOWS)
    for name in FLOWS:
        definition = json.loads((FLOWS_DIR / f"{name}.json").read_text())
        assert definition["data_api_version"] == "3.0"
        assert set(definition["routing_model"]) == {screen["id"] for screen in definition["screens"]}
