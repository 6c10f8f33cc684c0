"""Engine and sessions, built from DATABASE_URL.

``session_scope()`` is the one way code opens a transaction: it commits on success and rolls
back on any exception, so "marked done" is only ever written together with the work it marks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from settings import settings

M = TypeVar("M")
# PostgreSQL connections per process: POOL_SIZE kept open, up to POOL_MAX_OVERFLOW more when
# busy; beyond that a caller waits (QueuePool's 30 s) and then gets sqlalchemy's TimeoutError.
POOL_SIZE, POOL_MAX_OVERFLOW = 5, 10


def build_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=POOL_MAX_OVERFLOW)

    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30})

    # SQLite serialises writers. Taking the write lock at BEGIN (IMMEDIATE) makes every
    # transaction see the latest committed state before it decides anything, the same
    # guarantee PostgreSQL's row locks give the worker code.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@cache
def get_engine() -> Engine:
    return build_engine(settings.database_url)


@cache
def _session_factory() -> sessionmaker[Session]:
    return sessionmaker(get_engine(), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """One transaction: commit when the block ends, roll back if it raises."""
    session = _session_factory()()
    try:
        with session.begin():
            yield session
    finally:
        session.close()


def dispose_engine() -> None:
    """Drop pooled connections; called in forked worker children so none is shared."""
    if get_engine.cache_info().currsize:
        get_engine().dispose(close=False)


def lock_key(session: Session, key: str) -> None:
    """Serialise transactions that touch the same logical thing (held until commit).

    PostgreSQL: a transaction-scoped advisory lock. SQLite: nothing to do, its writers are
    already serialised by BEGIN IMMEDIATE.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key})


def dialect_insert(dialect: str):  # type: ignore[no-untyped-def]
    """The ``insert`` construct with ``on_conflict_do_nothing`` for this backend."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def locked_row(session: Session, model: type[M], key: dict[str, Any], values: dict[str, Any]) -> M:
    """The row with this unique ``key``, inserted with ``values`` first if there is none, locked
    for update. Two requests creating the same row at once do not collide: the unique index lets
    one insert, the other inserts nothing and waits for that row's lock."""
    insert = dialect_insert(session.get_bind().dialect.name)
    session.execute(insert(model).values(**key, **values).on_conflict_do_nothing())
    return session.scalars(select(model).filter_by(**key).with_for_update()).one()
