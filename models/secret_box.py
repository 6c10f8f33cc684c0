"""Secrets at rest: Fernet (AES-128-CBC with HMAC-SHA256) under a key derived from SECRET_KEY
with HKDF-SHA256, so the database alone never reveals a channel's token or keys.

Without SECRET_KEY nothing is encrypted or decrypted: ``SecretKeyMissing`` names the setting.
Changing SECRET_KEY makes the stored secrets unreadable (``SecretUnreadable``): set them again.
"""

from __future__ import annotations

import base64
from functools import cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from settings import settings

_INFO = b"wacrm channel secrets v1"


class SecretKeyMissing(RuntimeError):
    def __init__(self) -> None:
        super().__init__("SECRET_KEY is not set: channel secrets cannot be stored or read until it is")


class SecretUnreadable(RuntimeError):
    pass


@cache
def _fernet(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def _box() -> Fernet:
    if not settings.secret_key:
        raise SecretKeyMissing
    return _fernet(settings.secret_key)


def encrypt(value: str) -> str:
    return _box().encrypt(value.encode()).decode()


def decrypt(token: str | None) -> str | None:
    if token is None:
        return None
    try:
        return _box().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretUnreadable("a stored channel secret cannot be read with this SECRET_KEY") from exc
