"""What makes a password or a token too weak: pure rules, named so that a refusal can say which.

A password (an account's) needs ``PASSWORD_MIN_LENGTH`` characters, must not be the login (or
contain it) and must not be a common password. ``ADMIN_TOKEN`` is a machine secret: it needs
``ADMIN_TOKEN_MIN_LENGTH`` characters, ``ADMIN_TOKEN_MIN_DISTINCT`` different ones, and must not
be a placeholder such as ``change-me`` (``./run`` generates one of 43 random characters).
"""

from __future__ import annotations

import re

PASSWORD_MIN_LENGTH = 10
ADMIN_TOKEN_MIN_LENGTH = 24
ADMIN_TOKEN_MIN_DISTINCT = 10

# Placeholders and the most common passwords (the first of the public leaked-password lists),
# compared after lower-casing and dropping everything that is not a letter or a digit.
COMMON = frozenset(
    [
        "changeme",
        "changemenow",
        "change",
        "password",
        "password1",
        "password123",
        "passw0rd",
        "p4ssw0rd",
        "secret",
        "secret123",
        "admin",
        "admin123",
        "administrator",
        "adminadmin",
        "root",
        "toor",
        "token",
        "admintoken",
        "apitoken",
        "default",
        "letmein",
        "welcome",
        "welcome1",
        "qwerty",
        "qwerty123",
        "qwertyuiop",
        "asdfghjkl",
        "zxcvbnm",
        "123456",
        "1234567",
        "12345678",
        "123456789",
        "1234567890",
        "0123456789",
        "111111",
        "000000",
        "abc123",
        "iloveyou",
        "monkey",
        "dragon",
        "sunshine",
        "princess",
        "football",
        "baseball",
        "master",
        "superman",
        "batman",
        "trustno1",
        "whatever",
        "starwars",
        "login",
        "guest",
        "test",
        "testing",
        "test123",
        "example",
        "sample",
        "demo",
        "rahasia",
        "rahasia123",
        "katasandi",
        "sandi",
        "bismillah",
        "indonesia",
        "jakarta",
    ]
)
PLACEHOLDER_WORDS = ("changeme", "password", "secret", "example", "placeholder", "yourtoken", "xxxx")


def _folded(value: str) -> str:
    return re.sub(r"[^a-z0-9]", "", value.lower())


def password_problem(password: str | None, login: str) -> str | None:
    """Why this password may not be used (one sentence naming the rule), or None."""
    if not password:
        return "password: required"
    if len(password) < PASSWORD_MIN_LENGTH:
        return f"password: at least {PASSWORD_MIN_LENGTH} characters"
    folded, login_folded = _folded(password), _folded(login)
    if login_folded and (folded == login_folded or (login_folded in folded and len(login_folded) >= 4)):
        return "password: must not be (or contain) the login"
    if folded in COMMON or (len(set(password)) < 4):
        return "password: too common (a well-known password or too few different characters)"
    return None


def admin_token_problem(token: str) -> str | None:
    """Why ADMIN_TOKEN is refused (naming ADMIN_TOKEN and the rule), or None when it is usable."""
    folded = _folded(token)
    if folded in COMMON or any(word in folded for word in PLACEHOLDER_WORDS):
        return "ADMIN_TOKEN is refused: it is a placeholder or a common password"
    if len(token) < ADMIN_TOKEN_MIN_LENGTH:
        return f"ADMIN_TOKEN is refused: it must be at least {ADMIN_TOKEN_MIN_LENGTH} characters long"
    if len(set(token)) < ADMIN_TOKEN_MIN_DISTINCT:
        return (
            f"ADMIN_TOKEN is refused: it must have at least {ADMIN_TOKEN_MIN_DISTINCT} different "
            "characters (low entropy)"
        )
    return None
