"""WhatsApp Flows data-endpoint encryption, as Meta's examples do it (docs/flows.md).

Meta encrypts each request with a fresh AES-128 key (AES-GCM, 16-byte tag appended to the
ciphertext) and sends that key encrypted to the business's RSA public key (OAEP, SHA-256). The
answer is encrypted with the same AES key and the request's IV with every bit flipped.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

TAG_BYTES = 16
_OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


class CannotDecrypt(ValueError):
    """The request is not for our key (rotated, wrong) or was altered: Meta expects 421."""


@dataclass(frozen=True)
class FlowRequest:
    payload: dict[str, Any]
    aes_key: bytes
    iv: bytes


@functools.lru_cache(maxsize=4)
def load_private_key(pem_or_path: str, passphrase: str | None = None) -> rsa.RSAPrivateKey:
    """The RSA key from PEM text or from a file holding it. Parsing costs tens of milliseconds,
    decrypting a request a few: cached."""
    text = pem_or_path if "-----BEGIN" in pem_or_path else Path(pem_or_path).read_text()
    key = serialization.load_pem_private_key(
        text.encode(), password=passphrase.encode() if passphrase else None
    )
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("WHATSAPP_FLOWS_PRIVATE_KEY is not an RSA private key")
    return key


def decrypt_request(body: Any, private_key: rsa.RSAPrivateKey) -> FlowRequest:
    """The decrypted request, or CannotDecrypt saying what was wrong."""
    if not isinstance(body, dict):
        raise CannotDecrypt("the body is not a JSON object")
    try:
        encrypted_key = _b64(body, "encrypted_aes_key")
        data = _b64(body, "encrypted_flow_data")
        iv = _b64(body, "initial_vector")
        aes_key = private_key.decrypt(encrypted_key, _OAEP)
        plaintext = AESGCM(aes_key).decrypt(iv, data, None)  # the tag is the last 16 bytes
        payload = json.loads(plaintext)
    except CannotDecrypt:
        raise
    except Exception as exc:  # every failure to decrypt is the same answer, 421
        raise CannotDecrypt(f"cannot decrypt the request: {type(exc).__name__}") from exc
    if not isinstance(payload, dict):
        raise CannotDecrypt("the decrypted request is not a JSON object")
    return FlowRequest(payload, aes_key, iv)


def encrypt_response(response: dict[str, Any], request: FlowRequest) -> str:
    """The response body: base64 of AES-GCM(ciphertext || tag) under the flipped IV."""
    flipped_iv = bytes(byte ^ 0xFF for byte in request.iv)
    sealed = AESGCM(request.aes_key).encrypt(flipped_iv, json.dumps(response).encode(), None)
    return base64.b64encode(sealed).decode()


def encrypt_request(
    payload: dict[str, Any], public_key: rsa.RSAPublicKey
) -> tuple[dict[str, str], bytes, bytes]:
    """What Meta sends, for tests and the benchmark: the body, and the AES key and IV to read the answer."""
    aes_key, iv = AESGCM.generate_key(bit_length=128), os.urandom(16)
    sealed = AESGCM(aes_key).encrypt(iv, json.dumps(payload).encode(), None)
    body = {
        "encrypted_flow_data": base64.b64encode(sealed).decode(),
        "encrypted_aes_key": base64.b64encode(public_key.encrypt(aes_key, _OAEP)).decode(),
        "initial_vector": base64.b64encode(iv).decode(),
    }
    return body, aes_key, iv


def decrypt_response(body: str, aes_key: bytes, iv: bytes) -> dict[str, Any]:
    """Read an answer as Meta does (tests and the benchmark)."""
    flipped_iv = bytes(byte ^ 0xFF for byte in iv)
    return json.loads(AESGCM(aes_key).decrypt(flipped_iv, base64.b64decode(body), None))


def _b64(body: dict[str, Any], field: str) -> bytes:
    value = body.get(field)
    if not isinstance(value, str) or not value:
        raise CannotDecrypt(f"{field} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise CannotDecrypt(f"{field} is not base64") from exc
