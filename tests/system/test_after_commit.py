"""Publishing after commit, on a real PostgreSQL session: only the outermost commit publishes.

A savepoint (``begin_nested``) that is released is not a commit: the transaction around it can
still roll back, and then nothing it queued may reach the broker. A savepoint that is rolled back
takes back only what was queued inside it.
"""

from __future__ import annotations

from collections.abc import Hashable

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from models.db import get_engine, session_scope
from queueing.after_commit import publish_after_commit


class Recorder:
    """A publish callback that keeps every batch it was given."""

    def __init__(self) -> None:
        self.batches: list[list[Hashable]] = []

    def __call__(self, items: list[Hashable]) -> None:
        self.batches.append(items)


class Rollback(Exception):
    pass


def test_a_plain_commit_publishes_once_and_a_rollback_publishes_nothing():
    published = Recorder()
    with session_scope() as session:
        publish_after_commit(session, "test", 1, published)
        publish_after_commit(session, "test", 2, published)
        publish_after_commit(session, "test", 1, published)
    assert published.batches == [[1, 2]]

    with pytest.raises(Rollback), session_scope() as session:
        publish_after_commit(session, "test", 3, published)
        raise Rollback
    assert published.batches == [[1, 2]]


def test_a_released_savepoint_publishes_nothing_until_the_outer_commit():
    published = Recorder()
    with session_scope() as session:
        publish_after_commit(session, "test", "before", published)
        with session.begin_nested():
            session.execute(text("SELECT 1"))
            publish_after_commit(session, "test", "inside", published)
        assert published.batches == []  # released, not committed: the outer transaction goes on
        publish_after_commit(session, "test", "after", published)
        assert published.batches == []
    assert published.batches == [["before", "inside", "after"]]


def test_an_outer_rollback_after_a_released_savepoint_publishes_nothing():
    published = Recorder()
    with pytest.raises(Rollback), session_scope() as session:
        publish_after_commit(session, "test", "before", published)
        with session.begin_nested():
            publish_after_commit(session, "test", "inside", published)
        raise Rollback
    assert published.batches == []


def test_a_rolled_back_savepoint_takes_back_only_what_it_queued():
    published = Recorder()
    with session_scope() as session:
        publish_after_commit(session, "test", "before", published)
        with pytest.raises(Rollback), session.begin_nested():
            publish_after_commit(session, "test", "inside", published)
            with session.begin_nested():
                publish_after_commit(session, "test", "deeper", published)
            raise Rollback
        publish_after_commit(session, "test", "after", published)
    assert published.batches == [["before", "after"]]


def test_a_session_used_for_two_transactions_publishes_each_once():
    published = Recorder()
    with Session(get_engine()) as session:
        with session.begin():
            publish_after_commit(session, "test", "first", published)
        with session.begin():
            publish_after_commit(session, "test", "second", published)
        with pytest.raises(Rollback), session.begin():
            publish_after_commit(session, "test", "third", published)
            raise Rollback
    assert published.batches == [["first"], ["second"]]


def test_a_session_closed_without_committing_publishes_nothing_later():
    published = Recorder()
    with Session(get_engine()) as session:
        session.begin()
        publish_after_commit(session, "test", "abandoned", published)
        session.close()  # no commit, no rollback call: the transaction is simply gone
        with session.begin():
            publish_after_commit(session, "test", "next", published)
    assert published.batches == [["next"]]
