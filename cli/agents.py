"""``./run agents add|list``: accounts from the command line, for the first admin above all.

``./run agents add rina --role admin`` asks for the password twice (``--password-stdin`` reads
one line from standard input instead, for scripts); the password rules are the API's. The
audit names ``cli`` as the actor.
"""

from __future__ import annotations

import getpass
import sys

from sqlalchemy import select

from models import Agent
from models.db import session_scope
from pipeline import accounts

ACTOR = "cli"


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        sys.exit("the two passwords differ: nothing created")
    return first


def add(login: str, *, name: str | None, role: str, teams: list[str], password: str) -> str:
    try:
        with session_scope() as session:
            agent = accounts.create_agent(
                session, login=login, name=name, role=role, teams=teams, password=password, actor=ACTOR
            )
            return f"created {agent.login} ({agent.role}; teams: {', '.join(agent.teams) or 'none'})"
    except accounts.AccountError as exc:
        sys.exit(f"not created: {exc}")


def listing() -> str:
    with session_scope() as session:
        rows = [
            f"{a.login}\t{a.role}\t{','.join(a.teams) or '-'}\t"
            f"{'active' if a.active else 'inactive'}\t{'available' if a.available else 'away'}"
            f"\t{a.name or ''}"
            for a in session.scalars(select(Agent).order_by(Agent.login))
        ]
    return "\n".join(["login\trole\tteams\tstate\tavailability\tname", *rows])
