"""``./run channels add|list|disable``: the WhatsApp numbers, from the command line.

The same rules as ``/api/channels`` (pipeline/channels.py). A secret given as ``-`` is read from
the terminal without echo, so it stays out of the shell history and the process list. The
embedded ``./run`` keeps its SECRET_KEY in ``var/secret-key``; these commands use it when
SECRET_KEY is unset.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from sqlalchemy import or_, select

from models import Channel
from models.db import session_scope
from pipeline import channels
from pipeline.channels import ChannelError
from settings import VAR_DIR, settings

SECRET_KEY_FILE = VAR_DIR / "secret-key"
SECRET_FIELDS = ("access_token", "app_secret", "api_key", "hmac_key")
FIELDS = (
    "name",
    "kind",
    "phone_number_id",
    "waba_id",
    "waha_url",
    "session",
    "display_phone",
    "team",
    *SECRET_FIELDS,
)


def add_parser(commands: Any) -> None:
    parser = commands.add_parser("channels", help="add, list or disable WhatsApp numbers (channels)")
    actions = parser.add_subparsers(
        dest="action", metavar="ACTION", required=True, help="add, list or disable"
    )
    add = actions.add_parser("add", help="add a channel (a Cloud API number or a WAHA session)")
    add.add_argument("--name", required=True, help="its unique name (orders name it in 'channel')")
    add.add_argument("--kind", required=True, choices=("cloud", "waha"), help="its gateway")
    for field in FIELDS[2:]:
        hint = " ('-': read it without echo)" if field in SECRET_FIELDS else ""
        add.add_argument(f"--{field.replace('_', '-')}", dest=field, help=f"{field}{hint}")
    add.add_argument("--default", action="store_true", help="make it the default channel")
    actions.add_parser("list", help="list the channels (never their secrets)")
    disable = actions.add_parser("disable", help="disable a channel: its webhooks become unknown_channel")
    disable.add_argument("channel", help="its name or id")


def run(args: argparse.Namespace) -> int:
    if not settings.secret_key and SECRET_KEY_FILE.exists():
        settings.secret_key = SECRET_KEY_FILE.read_text().strip() or None
    try:
        if args.action == "add":
            print(_line(add(args)))
        elif args.action == "list":
            with session_scope() as session:
                for shown in channels.listing(session):
                    print(_line(shown))
        else:
            print(_line(disable(args.channel)))
    except ChannelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def add(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {field: getattr(args, field) for field in FIELDS}
    for field in SECRET_FIELDS:
        if data[field] == "-":
            data[field] = getpass.getpass(f"{field}: ")
    data["default"] = args.default
    with session_scope() as session:
        return channels.public(channels.create(session, data))


def disable(name_or_id: str) -> dict[str, Any]:
    with session_scope() as session:
        match = Channel.name == name_or_id
        if name_or_id.isdigit():
            match = or_(match, Channel.id == int(name_or_id))
        channel = session.scalars(select(Channel).where(match).with_for_update()).first()
        if channel is None:
            raise ChannelError(404, None, f"no channel {name_or_id!r}")
        return channels.public(channels.change(session, channel, {"enabled": False}))


def _line(shown: dict[str, Any]) -> str:
    address = shown.get("phone_number_id") or shown.get("session") or "-"
    flags = [flag for flag, on in (("default", shown["default"]), ("disabled", not shown["enabled"])) if on]
    return (
        f"{shown['id'] if shown['id'] is not None else '-':>4}  {shown['name']:<20} {shown['kind']:<7} "
        f"{address:<24} team={shown['team'] or settings.default_team} {' '.join(flags)}".rstrip()
    )
