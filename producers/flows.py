"""``POST /flows/{name}``: Meta's WhatsApp Flows data endpoint (docs/flows.md).

Meta signs the raw body like a webhook (``X-Hub-Signature-256``, the app secret) and encrypts it
to our public key. The answer is the encrypted next screen, as base64 text. Meta's status codes:
421 when the body cannot be decrypted (the client fetches our public key again and retries), 427
when the flow token is not one we issued for this Flow (the Flow closes), 432 for a bad
signature. A ``ping`` is the health check; an error notification is acknowledged and logged.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

from cryptography.hazmat.primitives import serialization
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse
from sqlalchemy.orm import Session

from domain.flow_encryption import (
    CannotDecrypt,
    FlowRequest,
    decrypt_request,
    encrypt_response,
    load_private_key,
)
from domain.flow_tokens import read_token, token_key
from models import Contact
from models.db import session_scope
from producers import channels
from producers.flow_screens import FLOWS, Step
from producers.rejections import Rejected
from producers.security import not_configured, read_body
from settings import Settings

log = logging.getLogger(__name__)
router = APIRouter(tags=["flows"])

CANNOT_DECRYPT, TOKEN_NOT_VALID, BAD_SIGNATURE = 421, 427, 432
FLOW_DATA_VERSION = "3.0"
_SCREEN_ID_MAX = 64


@router.post("/flows/{name}", response_class=PlainTextResponse, summary="WhatsApp Flows data endpoint")
async def flow_endpoint(name: str, request: Request) -> Response:
    config: Settings = request.app.state.settings
    handler = FLOWS.get(name)
    if handler is None:
        raise Rejected(
            404, f"no Flow named {name!r} (known: {', '.join(sorted(FLOWS))})", reason="unknown_flow"
        )
    if not config.whatsapp_flows_private_key:
        raise not_configured("WHATSAPP_FLOWS_PRIVATE_KEY")
    body = await read_body(request, config.max_body_bytes)
    known = await channels.known()
    # Signed by the Meta app, like webhooks: the secret of any Cloud API number we know.
    app_secrets = [config.whatsapp_app_secret, *(r.secret for r in known.by_phone_number_id.values())]
    try:
        channels.verify(
            [],
            app_secrets,
            body,
            request.headers.get("x-hub-signature-256"),
            header="X-Hub-Signature-256",
            development_mode=config.development_mode,
        )
    except Rejected as exc:
        if exc.reason != "signature":
            raise
        log.warning("flow request refused: %s", exc.error, extra={"flow": name})
        return Response(status_code=BAD_SIGNATURE)
    key = load_private_key(config.whatsapp_flows_private_key, config.whatsapp_flows_passphrase)
    try:
        flow_request = decrypt_request(_json_or_none(body), key)
    except CannotDecrypt as exc:
        log.warning("flow request not decrypted: %s", exc, extra={"flow": name})
        return PlainTextResponse("Decryption failed", status_code=CANNOT_DECRYPT)
    signing_key = _signing_key(config.whatsapp_flows_private_key, config.whatsapp_flows_passphrase)
    # The screens read and write the database: off the event loop.
    return await run_in_threadpool(_answer, name, flow_request, signing_key)


def _answer(name: str, flow_request: FlowRequest, signing_key: bytes) -> Response:
    payload = flow_request.payload
    version = payload.get("version", FLOW_DATA_VERSION)
    if payload.get("action") == "ping":
        return _sealed({"data": {"status": "active"}}, flow_request)
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    if "error" in data or "error_message" in data:
        # The client reports a problem with our last answer: acknowledge, and keep it for us.
        log.warning("flow error notification", extra={"flow": name, "flow_error": str(data)[:500]})
        return _sealed({"version": version, "data": {"acknowledged": True}}, flow_request)
    token = read_token(signing_key, payload.get("flow_token"))
    step = Step(
        action=str(payload.get("action") or "INIT"),
        screen=_screen(payload.get("screen")),
        data=data,
        flow_token=str(payload.get("flow_token")),
    )
    with session_scope() as session:
        contact = _customer(session, token.contact_id) if token and token.flow == name else None
        if contact is None:
            return _sealed({"error_msg": "The message is no longer available"}, flow_request, TOKEN_NOT_VALID)
        response = FLOWS[name](session, contact, step)
    return _sealed({"version": version, **response}, flow_request)


def _customer(session: Session, contact_id: int) -> Contact | None:
    """The contact a token names, or the one it was merged into since the token was issued."""
    contact = session.get(Contact, contact_id)
    while contact is not None and contact.merged_into_id is not None:
        contact = session.get(Contact, contact.merged_into_id)
    return contact


def _sealed(response: dict[str, Any], flow_request: FlowRequest, status: int = 200) -> Response:
    return PlainTextResponse(encrypt_response(response, flow_request), status_code=status)


def _screen(value: Any) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= _SCREEN_ID_MAX else None


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


@functools.lru_cache(maxsize=4)
def _signing_key(pem_or_path: str, passphrase: str | None) -> bytes:
    key = load_private_key(pem_or_path, passphrase)
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return token_key(der)
