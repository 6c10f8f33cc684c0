"""Announcing work to the broker only once the transaction that decided it has committed.

A decision is written to a table first (an outbox row, a CRM sync job); its task is published
after the commit, so a rolled-back decision publishes nothing. A publish that fails (the broker
is away) is only logged: the row is still waiting, and that table's sweeper publishes it later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable

from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)


def publish_after_commit(
    session: Session, key: str, item: Hashable, publish: Callable[[list[Hashable]], None]
) -> None:
    """Collect ``item`` under ``key``; when the session commits, ``publish`` gets them all, once."""
    pending: dict[Hashable, None] | None = session.info.get(key)
    if pending is None:
        pending = session.info[key] = {}  # a dict: ordered, and each item once
        event.listen(session, "after_commit", lambda s: _publish(s, key, publish), once=True)
        event.listen(session, "after_rollback", lambda s: s.info.pop(key, None), once=True)
    pending[item] = None


def _publish(session: Session, key: str, publish: Callable[[list[Hashable]], None]) -> None:
    items = list(session.info.pop(key, None) or ())
    if not items:
        return
    try:
        publish(items)
    except Exception:
        log.warning("broker unavailable; the sweeper will publish these", exc_info=True, extra={"key": key})
