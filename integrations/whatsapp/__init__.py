"""Sending WhatsApp messages through the gateway the settings name.

``gateway_for(settings)`` is the one place that turns ``WHATSAPP_GATEWAY`` into an adapter, and
it refuses a gateway whose credentials are missing at start-up rather than at the first send.
"""

from __future__ import annotations

from integrations.whatsapp.base import (
    Attachment,
    BlockedWindow,
    Gateway,
    GatewayError,
    MediaRefused,
    OutgoingMessage,
    PermanentError,
    Sent,
    TemplateCall,
    TransientError,
    Unconfirmed,
)
from integrations.whatsapp.cloud import CloudApiGateway
from integrations.whatsapp.sandbox import SandboxGateway
from integrations.whatsapp.waha import WahaGateway
from settings import Settings

GATEWAYS = ("cloud", "waha", "sandbox")

__all__ = [
    "GATEWAYS",
    "Attachment",
    "BlockedWindow",
    "CloudApiGateway",
    "Gateway",
    "GatewayError",
    "MediaRefused",
    "OutgoingMessage",
    "PermanentError",
    "SandboxGateway",
    "Sent",
    "TemplateCall",
    "TransientError",
    "Unconfirmed",
    "WahaGateway",
    "gateway_for",
]


def gateway_for(config: Settings) -> Gateway:
    """The adapter named by ``config.whatsapp_gateway``; ValueError naming the setting to fix."""
    name = config.whatsapp_gateway.strip().lower()
    if name == "cloud":
        token, phone_number_id = config.whatsapp_access_token, config.whatsapp_phone_number_id
        if not token or not phone_number_id:
            missing = [
                s
                for s, v in (("WHATSAPP_ACCESS_TOKEN", token), ("WHATSAPP_PHONE_NUMBER_ID", phone_number_id))
                if not v
            ]
            raise ValueError(f"WHATSAPP_GATEWAY=cloud needs {' and '.join(missing)}")
        return CloudApiGateway(
            config.whatsapp_api_base, token, phone_number_id, config.outbound_timeout_seconds
        )
    if name == "waha":
        if not config.waha_url:
            raise ValueError("WHATSAPP_GATEWAY=waha needs WAHA_URL")
        return WahaGateway(
            config.waha_url, config.waha_api_key, config.waha_session, config.outbound_timeout_seconds
        )
    if name == "sandbox":
        return SandboxGateway()
    raise ValueError(f"WHATSAPP_GATEWAY={config.whatsapp_gateway!r} is not one of {', '.join(GATEWAYS)}")
