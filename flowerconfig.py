"""Flower's settings. ``celery -A workers flower`` reads this file from the working directory
(``--conf=/path/to/flowerconfig.py`` from anywhere else).

Flower executes it as Python and takes every top-level name that is one of its options
(``basic_auth``, ``max_tasks``, ...); helpers here are private (``_name``) so that none is taken
for an option by accident.

Flower never runs open. Its HTTP basic auth comes, first found first used, from
``--basic_auth=user:password`` on the command line, or the ``FLOWER_BASIC_AUTH`` environment
variable (read by Flower itself and by ``settings.flower_basic_auth``); several users are
separated by commas. Without it (and without Flower's OAuth, ``--auth``), Flower exits at start
naming the setting, unless ``FLOWER_UNAUTHENTICATED=1`` says that this is a development machine.
Task arguments shown are database ids (inbox event, message, outbox row, contact, broadcast),
never phone numbers or message text (tests/system/test_flower.py checks every task's signature).
"""

import os

from tornado.options import options as _flower

from settings import settings as _settings

_OPT_OUT = "FLOWER_UNAUTHENTICATED"


def _credentials(raw: "list[str] | str | None") -> list[str]:
    """``user:password`` entries, each with both parts; ValueError names a bad one by position."""
    entries = raw.split(",") if isinstance(raw, str) else list(raw or [])
    found = []
    for number, entry in enumerate((e.strip() for e in entries), 1):
        if not entry:
            continue
        user, colon, password = entry.partition(":")
        if not (colon and user and password):
            # Its position only: the entry may be a password typed without its user.
            raise ValueError(f"basic auth entry {number} is not 'user:password'")
        found.append(entry)
    return found


def _refuse(reason: str) -> None:
    # SystemExit goes through Flower's option parsing and the celery command untouched: the
    # process ends with status 1 and this text on stderr, before it binds the port.
    raise SystemExit(
        f"flower: {reason}. Set FLOWER_BASIC_AUTH=user:password (several: comma-separated), or "
        f"{_OPT_OUT}=1 to run without authentication on a development machine."
    )


try:
    # Command line and FLOWER_BASIC_AUTH as Flower parsed them already, else the setting.
    _users = _credentials(_flower.basic_auth) or _credentials(_settings.flower_basic_auth)
except ValueError as _exc:
    _refuse(str(_exc))

# Flower's OAuth (--auth, FLOWER_AUTH) counts as authentication too.
if _users:
    basic_auth = _users
elif not _flower.auth and os.environ.get(_OPT_OUT, "").strip().lower() not in ("1", "true", "yes"):
    _refuse("refusing to start without authentication")

# The tasks page shows each task's arguments (ids) and its retries.
tasks_columns = "name,uuid,state,args,received,started,runtime,retries,worker"
# Tasks kept in memory for the pages and the API; Prometheus counters do not depend on it.
max_tasks = 10000
# A worker gone for an hour (scaled down, replaced) leaves the list and the metrics.
purge_offline_workers = 3600
