"""What one send costs in SQL: a test that fails if someone adds a statement per send.

The send task (workers/outbound.py) is called here in the test process, against the run's real
PostgreSQL, its private Redis (the shared rate limit) and the fake Cloud API over real HTTP; an
SQLAlchemy event listener counts every statement the engine executes, transaction control
(BEGIN is implicit in psycopg2; COMMIT is counted by a second listener) included.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event, text

from models.db import get_engine, session_scope
from workers.outbound import send_outbound

# Statements per plain text send, COMMITs included: the claim 3 (the row and its contact in one
# SELECT, the UPDATE, COMMIT), the dispatch marker 2, recording the send 17 (the contact lock, the
# row, its first conversation, the message, the CRM log job the test's Odoo set-up queues). It
# was 24 before the claim read the contact with the row and the record step was told its contact.
# Raise it only with a reason written next to it: every statement here is paid for every send.
# +1: recording a send first looks for a phone echo of it already recorded (docs/echoes.md);
# +1: the live event of the new message names its conversation's team (docs/live.md).
# +2 with Odoo (the CRM log job): after the commit, the look-up and its COMMIT that wake one CRM
# task per burst of jobs rather than one per job (docs/crm-odoo.md, "One wake-up per burst").
STATEMENTS_PER_SEND = 25


@contextmanager
def counted() -> Iterator[list[str]]:
    """Every SQL statement and COMMIT the engine runs meanwhile."""
    seen: list[str] = []
    engine = get_engine()

    def on_execute(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(" ".join(statement.split()[:4]))

    def on_commit(conn) -> None:
        seen.append("COMMIT")

    event.listen(engine, "before_cursor_execute", on_execute)
    event.listen(engine, "commit", on_commit)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        event.remove(engine, "commit", on_commit)


def queued_texts(count: int) -> list[int]:
    """``count`` contacts who wrote just now, each with one queued text message."""
    with session_scope() as session:
        contacts = session.execute(
            text(
                "INSERT INTO contacts (name, phone_e164, lead_source, last_inbound_at, created_at) "
                "SELECT 'Pelanggan ' || g, '+62813' || lpad(g::text, 8, '0'), 'organic', now(), now() "
                "FROM generate_series(1, :count) AS g RETURNING id"
            ),
            {"count": count},
        ).scalars()
        ids = session.execute(
            text(
                "INSERT INTO outbound_messages (dedupe_key, trigger, contact_id, text, state, attempts, "
                "next_attempt_at, created_at, updated_at) "
                "SELECT 'cost:' || c, 'bench', c, 'Halo', 'queued', 0, now(), now(), now() "
                "FROM unnest(CAST(:contacts AS bigint[])) AS c RETURNING id"
            ),
            {"contacts": list(contacts)},
        ).scalars()
        return sorted(ids)


def test_a_text_send_costs_at_most_its_statements(cloud_api):
    ids = queued_texts(6)
    send_outbound(ids[0])  # warm: the gateway client, the limiter's script, the engine's pool

    with counted() as seen:
        outcomes = [send_outbound(outbound_id) for outbound_id in ids[1:]]

    assert outcomes == ["sent"] * 5
    assert len(cloud_api.accepted) == 6
    per_send = len(seen) / 5
    print(f"statements per send: {per_send}", *seen[: len(seen) // 5], sep="\n#")
    assert per_send <= STATEMENTS_PER_SEND
