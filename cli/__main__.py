"""``./run`` = ``python -m cli {up,demo,migrate,faq,flows,channels,agents,labels,test,bench}``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cli import channels
from settings import VAR_DIR, settings

# Handled by the ./run script before Python (and here, for `python -m cli test ...`): every
# argument after the command goes to pytest or to the benchmarks untouched.
PASS_THROUGH = {"test": "pytest", "bench": "bench"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="./run",
        description="WhatsApp CRM automation backend",
        epilog=(
            "./run with no command is ./run up, and takes up's options (./run --port 8001). "
            "./run COMMAND --help shows a command's options."
        ),
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    start = commands.add_parser("up", help="run the API, a worker and beat in this terminal (the default)")
    start.add_argument("--host", default="127.0.0.1", help="address the API listens on (default %(default)s)")
    start.add_argument("--port", type=int, default=8000, help="port the API listens on (default %(default)s)")
    start.add_argument(
        "--concurrency",
        type=int,
        default=2,
        help="worker processes of the Celery worker (default %(default)s)",
    )
    show = commands.add_parser("demo", help="post sample events to a running system, print the result")
    show.add_argument(
        "--url",
        default="http://127.0.0.1:8000",
        help="where the running system answers (default %(default)s)",
    )
    commands.add_parser("migrate", help="apply database migrations (alembic upgrade head)")
    faq_command = commands.add_parser("faq", help="load the FAQ file into the database, or print it")
    faq_command.add_argument(
        "action",
        choices=("import", "seed", "export"),
        help="import: write the file's entries into the database (after migrating); "
        "seed: the same, only when the database has no FAQ entry yet; "
        "export: print the database's entries as a FAQ file",
    )
    faq_command.add_argument(
        "--file",
        type=Path,
        default=settings.automation_file,
        help="the FAQ file to import (default AUTOMATION_FILE, %(default)s)",
    )
    flows_command = commands.add_parser("flows", help="WhatsApp Flows: make the data endpoint's key pair")
    flows_command.add_argument("action", choices=("keygen",), help="keygen: a new RSA key pair")
    flows_command.add_argument(
        "--out",
        type=Path,
        default=VAR_DIR / "flows-private-key.pem",
        help="where the private key goes; an existing file is never replaced (default %(default)s)",
    )
    flows_command.add_argument(
        "--passphrase-stdin", action="store_true", help="encrypt the key with a passphrase read from stdin"
    )
    channels.add_parser(commands)
    agents_command = commands.add_parser("agents", help="add an account (the first admin) or list them")
    agents_actions = agents_command.add_subparsers(
        dest="action", metavar="ACTION", required=True, help="add: a new account; list: every account"
    )
    adding = agents_actions.add_parser("add", help="add an account; the password is asked for")
    adding.add_argument("login", help="the account's login (letters, digits, . _ @ -)")
    adding.add_argument("--name", help="the person's name")
    adding.add_argument(
        "--role", choices=("admin", "supervisor", "agent"), default="agent", help="(default %(default)s)"
    )
    adding.add_argument(
        "--team",
        action="append",
        dest="teams",
        help="a team the account is in (repeat for several; default DEFAULT_TEAM)",
    )
    adding.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input (one line)"
    )
    agents_actions.add_parser("list", help="every account: login, role, teams, state")
    labels_command = commands.add_parser("labels", help="the labels page's daily roll-up")
    labels_command.add_argument(
        "action",
        choices=("rebuild",),
        help="rebuild: count it again from the history (after a TIMEZONE change)",
    )
    commands.add_parser("test", help="run the tests: ./run test [pytest arguments], e.g. ./run test -x")
    commands.add_parser("bench", help="run the benchmarks: ./run bench [arguments], see ./run bench --help")
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in PASS_THROUGH:
        os.execv(sys.executable, [sys.executable, "-m", PASS_THROUGH[argv[0]], *argv[1:]])
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["up", *argv]
    args = build_parser().parse_args(argv)

    # Imported here, so that --help and the pass-through commands need no database.
    from cli import agents, demo, faq, up
    from models.migrate import upgrade_to_head

    if args.command == "faq":
        if args.action == "export":
            print(faq.export(), end="")
            return
        upgrade_to_head()
        if args.action == "seed":
            imported = faq.seed_if_empty(args.file)
            print(
                f"seeded {imported} FAQ entries from {args.file}"
                if imported
                else "the database has FAQ entries already: nothing seeded"
            )
        else:
            print(f"imported {faq.import_file(args.file)} FAQ entries from {args.file}")
    elif args.command == "flows":
        from cli import flows

        passphrase = sys.stdin.readline().rstrip("\n") if args.passphrase_stdin else None
        try:
            public = flows.keygen(args.out, passphrase)
        except FileExistsError:
            sys.exit(f"{args.out} exists: a key Meta may already have is never replaced (--out elsewhere)")
        print(flows.instructions(args.out, public, bool(passphrase)))
    elif args.command == "channels":
        upgrade_to_head()
        sys.exit(channels.run(args))
    elif args.command == "agents":
        upgrade_to_head()
        if args.action == "list":
            print(agents.listing())
        else:
            password = agents.read_password(args.password_stdin)
            teams = args.teams if args.teams is not None else [settings.default_team]
            print(agents.add(args.login, name=args.name, role=args.role, teams=teams, password=password))
    elif args.command == "labels":
        from cli import labels

        upgrade_to_head()
        print(labels.rebuild())
    elif args.command == "demo":
        demo.run(args.url)
    elif args.command == "migrate":
        upgrade_to_head()
    else:
        up.run(host=args.host, port=args.port, concurrency=args.concurrency)


if __name__ == "__main__":
    main()
