"""How long to wait before trying again: exponential backoff with "equal jitter" (half of the
delay fixed, half random, so retries of many failures spread out), never sooner than the
other side asked for (a ``Retry-After``)."""

from __future__ import annotations

import random


def equal_jitter(retry: int, base: float, ceiling: float, asked: float | None = None) -> float:
    """Seconds before retry number ``retry`` (0: the first): ``base * 2**retry`` capped at
    ``ceiling``, then a random point in its upper half; at least ``asked`` when given."""
    backoff = min(ceiling, base * 2**retry)
    return max(asked or 0, random.uniform(backoff / 2, backoff))
