"""Announcing work to the broker only once the transaction that decided it has committed.

A decision is written to a table first (an outbox row, a CRM sync job); its task is published
after the commit, so a rolled-back decision publishes nothing. A publish that fails (the broker
is away) is only logged: the row is still waiting, and that table's sweeper publishes it later.

Only the outermost commit publishes. SQLAlchemy's ``after_commit`` also fires when a savepoint
(``begin_nested``) is released, but the transaction around it can still roll back; a savepoint
that is rolled back takes back only what was queued inside it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

log = logging.getLogger(__name__)

Publish = Callable[[list[Hashable]], None]
_LISTENING = "after_commit_keys"  # session.info: the keys whose listeners are on this session


def publish_after_commit(session: Session, key: str, item: Hashable, publish: Publish) -> None:
    """Collect ``item`` under ``key``; when the outermost transaction commits, ``publish`` gets
    them all, once each, in the order they came."""
    listening: set[str] = session.info.setdefault(_LISTENING, set())
    if key not in listening:
        listening.add(key)  # once per session and key, however many transactions it runs
        event.listen(session, "after_commit", lambda s: _committed(s, key, publish))
        event.listen(session, "after_soft_rollback", lambda s, t: _rolled_back(s, key, t))
        event.listen(session, "after_transaction_end", lambda s, t: _ended(s, key, t))
    # Each item with the savepoint it was queued in (None: the outer transaction); a dict keeps
    # the order, and each item once.
    pending: dict[Hashable, SessionTransaction | None] = session.info.setdefault(key, {})
    pending.setdefault(item, session.get_nested_transaction())


def _committed(session: Session, key: str, publish: Publish) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint released: its items now wait for the transaction around it
    items = list(session.info.pop(key, None) or ())
    if not items:
        return
    try:
        publish(items)
    except Exception:
        log.warning("broker unavailable; the sweeper will publish these", exc_info=True, extra={"key": key})


def _ended(session: Session, key: str, transaction: SessionTransaction) -> None:
    """The outer transaction is over: what its commit did not publish (a rollback, a session
    closed without committing) is dropped, never published by a later transaction."""
    if transaction.parent is None:
        session.info.pop(key, None)


def _rolled_back(session: Session, key: str, transaction: SessionTransaction) -> None:
    """A savepoint rolled back: forget the items queued inside it (or in savepoints within it)."""
    boundary = rolled_back_savepoint(transaction)
    pending: dict[Hashable, SessionTransaction | None] = session.info.get(key) or {}
    if boundary is None:
        return  # the outer transaction: _ended drops everything
    for item, savepoint in list(pending.items()):
        if within(savepoint, boundary):
            del pending[item]


def rolled_back_savepoint(transaction: SessionTransaction) -> SessionTransaction | None:
    """The savepoint an ``after_soft_rollback`` took back, or None when it was the transaction."""
    boundary = transaction
    while not boundary.nested and boundary.parent is not None:
        boundary = boundary.parent  # a failed flush's subtransaction rolls back what encloses it
    return boundary if boundary.nested else None


def within(savepoint: SessionTransaction | None, boundary: SessionTransaction) -> bool:
    """Was ``savepoint`` (None: the transaction itself) opened inside ``boundary``?"""
    while savepoint is not None:
        if savepoint is boundary:
            return True
        savepoint = savepoint.parent
    return False
