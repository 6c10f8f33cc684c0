"""The sandbox gateway: the embedded mode's stand-in for WhatsApp, which sends nothing.

It applies the Cloud API's window rule with the very same body builder (text while the window is
open, the template once it has closed, ``BlockedWindow`` with neither), so an automation tried
out on embedded defaults takes the paths it will take in production. It logs only the outbox id
and the message type: never the number or the text.
"""

from __future__ import annotations

import logging

from integrations.whatsapp.base import OutgoingMessage, Sent
from integrations.whatsapp.cloud import cloud_request_body

log = logging.getLogger(__name__)


class SandboxGateway:
    name = "sandbox"

    def send(self, message: OutgoingMessage, *, window_open: bool) -> Sent:
        body = cloud_request_body(message, window_open=window_open)
        log.info(
            "sandbox send (nothing sent)", extra={"outbound_id": message.outbound_id, "type": body["type"]}
        )
        return Sent(external_id=f"sandbox.{message.outbound_id}", type=body["type"], request=body)
