"""What a failed HTTP request says about itself: did it leave this machine?

``requests`` reports a refused connection and a connection dropped after the request was written
as the same ``ConnectionError``; only the urllib3 exception underneath tells them apart, and only
a request that never left may be sent again without risk of doing it twice. Shared by every
client in ``integrations``.
"""

from __future__ import annotations

import requests
import urllib3.exceptions

# Raised before a single byte was written: refused, DNS, connect timeout (NewConnectionError and
# NameResolutionError are subclasses of ConnectTimeoutError).
_NOT_SENT = (urllib3.exceptions.ConnectTimeoutError,)


def never_sent(exc: requests.RequestException) -> bool:
    """True when the request certainly did not reach the other side."""
    return isinstance(exc, requests.ConnectTimeout) or caused_by(exc, _NOT_SENT)


def caused_by(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    """Whether ``kinds`` appears anywhere under ``exc``: in ``args`` (requests wraps urllib3's
    MaxRetryError there), in MaxRetryError's ``reason``, or in ``__cause__``/``__context__``."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kinds):
            return True
        linked = [*current.args, getattr(current, "reason", None), current.__cause__, current.__context__]
        stack.extend(item for item in linked if isinstance(item, BaseException))
    return False
