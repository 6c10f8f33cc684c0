"""Accounts benchmark: what the permission check costs an authorised API call.

The real app under ``uvicorn`` on real PostgreSQL (a fresh database, migrated, dropped at the
end) and a private redis-server. One contact with a conversation; an agent account of the
default team with a personal API token. The same endpoint, ``GET /api/contacts/{id}``, is called
alternately with the agent's token (the token's hash looked up with its account in one indexed
query, the role checked against the permission table, the contact's team checked) and with
ADMIN_TOKEN (compared in memory, no team check): today's admin call is the baseline. Reported:
the p95 latency of each, and their ratio (goal <= 1.2).

Run from the project root::

    .venv/bin/python -m bench.accounts            # 3,000 calls of each
    .venv/bin/python -m bench.accounts --quick    # 300 calls of each, a smoke run
    .venv/bin/python -m bench.accounts --json figures.json

PostgreSQL is reached as ``BENCH_POSTGRES_URL`` (default: postgres on 127.0.0.1:5432). Figures are
printed, never asserted.
"""

from __future__ import annotations

import os
import statistics
import time

import requests

from bench.harness import bench_database, configure_environment, phase, private_redis, uvicorn_server
from bench.report import Figure, bench_args, bench_main

DESCRIPTION = "Accounts benchmark: p95 of an agent-token API call against the ADMIN_TOKEN call."
ADMIN_TOKEN = "bench-accounts-admin-token-Hq7Zp3Lx9"
FULL_CALLS, QUICK_CALLS = 3000, 300
WARM_UP = 50
GOAL = 1.2


def seed() -> tuple[int, str]:
    """A contact with a conversation, an agent of the default team and their personal token."""
    from api.auth import issue
    from models import Agent, AgentTeam, Contact, Conversation
    from models.accounts import PERSONAL
    from models.base import utcnow
    from models.db import session_scope
    from models.migrate import upgrade_to_head
    from settings import settings

    upgrade_to_head()
    with session_scope() as session:
        contact = Contact(phone_e164="+6281200000001", name="Budi")
        session.add(contact)
        session.flush()
        now = utcnow()
        session.add(Conversation(contact_id=contact.id, started_at=now, last_message_at=now))
        agent = Agent(login="ayu", role="agent", memberships=[AgentTeam(team=settings.default_team)])
        session.add(agent)
        session.flush()
        secret, _ = issue(
            session, kind=PERSONAL, login="ayu", agent_id=agent.id, expires_at=None, name="bench"
        )
        return contact.id, secret


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[94]


def measure(quick: bool, figures: list[Figure]) -> None:
    calls = QUICK_CALLS if quick else FULL_CALLS
    with private_redis() as redis_server, bench_database() as database_url:
        configure_environment(database_url, redis_server.url)
        os.environ["ADMIN_TOKEN"] = ADMIN_TOKEN
        contact_id, agent_secret = seed()
        with uvicorn_server(1) as port:
            url = f"http://127.0.0.1:{port}/api/contacts/{contact_id}"
            headers = {
                "agent": {"Authorization": f"Bearer {agent_secret}"},
                "admin": {"Authorization": f"Bearer {ADMIN_TOKEN}"},
            }
            timings: dict[str, list[float]] = {"agent": [], "admin": []}
            phase(f"GET /api/contacts/{{id}}, {calls} calls with each token, alternating, one client")
            with requests.Session() as client:
                for n in range(WARM_UP + calls):
                    for who in ("agent", "admin") if n % 2 else ("admin", "agent"):
                        started = time.perf_counter()
                        answer = client.get(url, headers=headers[who], timeout=10)
                        elapsed = (time.perf_counter() - started) * 1000
                        if answer.status_code != 200:
                            raise RuntimeError(f"{who}: {answer.status_code} {answer.text[:200]}")
                        if n >= WARM_UP:
                            timings[who].append(elapsed)
    agent, admin = p95(timings["agent"]), p95(timings["admin"])
    ratio = agent / admin
    print(f"   p95 agent token {agent:.2f} ms, ADMIN_TOKEN {admin:.2f} ms: {ratio:.2f}x (goal <= {GOAL}x)")
    figures.append(
        Figure(
            "accounts",
            "p95 of an authorised call (agent token: lookup, role, team)",
            agent,
            "ms",
            admin,
            "the same call with ADMIN_TOKEN",
            goal=f"ratio <= {GOAL}",
            met=ratio <= GOAL,
        )
    )
    figures.append(
        Figure(
            "accounts",
            "median, agent token",
            statistics.median(timings["agent"]),
            "ms",
            statistics.median(timings["admin"]),
            "median, ADMIN_TOKEN",
        )
    )


def main(argv: list[str] | None = None) -> None:
    bench_main(measure, bench_args("bench.accounts", DESCRIPTION, "300 calls of each: a smoke run", argv))


if __name__ == "__main__":
    main()
