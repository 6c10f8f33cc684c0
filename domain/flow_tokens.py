"""Flow tokens: which customer opened which Flow, readable only by us.

A Flow message carries an opaque ``flow_token`` that Meta sends back in every data-endpoint
request. Ours is ``<flow>.<contact id>.<signature>``: the endpoint learns the customer from it
without a table look-up, and nobody can forge a token for another customer (the signature is an
HMAC under a key only the business holds). A token signed with an older key no longer verifies,
which the endpoint answers as Meta's "no longer available" (427).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

_TOKEN = re.compile(r"^(?P<flow>[a-z][a-z0-9_]{0,63})\.(?P<contact>\d{1,19})\.(?P<signature>[0-9a-f]{32})$")


@dataclass(frozen=True)
class FlowToken:
    flow: str
    contact_id: int


def token_key(private_key_pem: bytes) -> bytes:
    """A signing key derived from the Flows private key, so there is no second secret to keep."""
    return hmac.new(b"wacrm flow tokens", private_key_pem, hashlib.sha256).digest()


def make_token(key: bytes, flow: str, contact_id: int) -> str:
    token = f"{flow}.{contact_id}.{_sign(key, flow, contact_id)}"
    if not _TOKEN.match(token):
        raise ValueError(f"{flow!r} is not a Flow name (lower case letters, digits, _)")
    return token


def read_token(key: bytes, token: object) -> FlowToken | None:
    """The Flow and customer of a token we made, or None (missing, malformed or not ours)."""
    match = _TOKEN.match(token) if isinstance(token, str) else None
    if not match:
        return None
    flow, contact_id = match["flow"], int(match["contact"])
    if not hmac.compare_digest(match["signature"], _sign(key, flow, contact_id)):
        return None
    return FlowToken(flow, contact_id)


def _sign(key: bytes, flow: str, contact_id: int) -> str:
    return hmac.new(key, f"{flow}.{contact_id}".encode(), hashlib.sha256).hexdigest()[:32]
