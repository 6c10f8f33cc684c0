"""What came of a conversation, and which outcome may replace which.

An outcome only moves up this ladder, so events that arrive twice or out of order settle on the
same answer: an order outranks silence and an opt-out (it says more about the customer), payment
outranks the order, a cancellation is final. The one step down: a customer who writes again
after going silent makes the conversation open again (``reopens``).
"""

from __future__ import annotations

OPEN, WENT_SILENT, OPTED_OUT = "open", "went_silent", "opted_out"
ORDERED, PAID, CANCELLED = "ordered", "paid", "cancelled"

_RANK = {None: 0, OPEN: 0, WENT_SILENT: 1, OPTED_OUT: 2, ORDERED: 3, PAID: 4, CANCELLED: 5}


def replaces(current: str | None, new: str) -> bool:
    """Whether ``new`` takes the place of the conversation's ``current`` outcome (None: open)."""
    return _RANK[new] > _RANK[current]


def reopens(current: str | None) -> bool:
    """A customer message in a conversation that had gone silent: it is open again."""
    return current == WENT_SILENT


def of_order(stage: str, paid: bool) -> str:
    """The outcome an order gives the conversation it came of."""
    if stage == "cancelled":
        return CANCELLED
    return PAID if paid else ORDERED
