"""A status webhook for a message we sent: the receipt, and what it settles.

The receipt itself is kept by ``receipts``. Here it also confirms a send whose answer we never
got (the Cloud API echoes our outbox id), and a delivered follow-up triggers the order's
"was it what you expected?" message.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from domain.statuses import RANKS
from pipeline import orders, receipts, sent_messages


def record_status(session: Session, payload: dict[str, Any]) -> None:
    status = payload["status"]
    receipts.record_status(session, payload)
    sent_messages.confirm_from_receipt(session, status)
    if RANKS.get(status["status"], 0) >= RANKS["delivered"]:
        orders.on_followup_delivered(session, status["id"])
