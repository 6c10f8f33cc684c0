"""Opting out of broadcasts: a customer who writes STOP (or the Indonesian BERHENTI) means it."""

from __future__ import annotations

OPT_OUT_WORDS = frozenset({"stop", "berhenti"})


def is_opt_out(text: str | None) -> bool:
    """True for a message that is exactly an opt-out word, in any case, spaces trimmed."""
    return text is not None and text.strip().lower() in OPT_OUT_WORDS
