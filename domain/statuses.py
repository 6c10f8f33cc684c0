"""Delivery statuses of outbound messages, and the order they may move in.

Receipts arrive out of order (``delivered`` before ``sent``; ``failed`` interleaved with
``delivered`` on multi-device). A status is applied only when it ranks above the current one,
so a message never moves backwards. ``failed`` outranks ``sent`` but not ``delivered``: a later
``delivered``/``read`` proves the message arrived after all.
"""

from __future__ import annotations

RANKS: dict[str, int] = {
    "queued": 0,
    "sent": 1,
    "failed": 2,
    "delivered": 3,
    "read": 4,
    "played": 5,
}
