"""``python -m cli {up,demo,migrate,faq}``."""

from __future__ import annotations

import argparse
from pathlib import Path

from cli import demo, faq, up
from models.migrate import upgrade_to_head
from settings import settings


def main() -> None:
    parser = argparse.ArgumentParser(prog="./run", description="WhatsApp CRM automation backend")
    commands = parser.add_subparsers(dest="command")
    start = commands.add_parser("up", help="run producers, a worker and beat (default)")
    start.add_argument("--host", default="127.0.0.1")
    start.add_argument("--port", type=int, default=8000)
    start.add_argument("--concurrency", type=int, default=2, help="worker processes")
    show = commands.add_parser("demo", help="post sample events to a running system, print the result")
    show.add_argument("--url", default="http://127.0.0.1:8000")
    commands.add_parser("migrate", help="apply database migrations (alembic upgrade head)")
    faq_command = commands.add_parser("faq", help="load the FAQ file into the database, or print it")
    faq_command.add_argument("action", choices=("import", "export"))
    faq_command.add_argument("--file", type=Path, default=settings.automation_file)
    args = parser.parse_args()

    if args.command == "faq":
        if args.action == "import":
            upgrade_to_head()
            print(f"imported {faq.import_file(args.file)} FAQ entries from {args.file}")
        else:
            print(faq.export(), end="")
    elif args.command == "demo":
        demo.run(args.url)
    elif args.command == "migrate":
        upgrade_to_head()
    else:
        up.run(
            host=getattr(args, "host", "127.0.0.1"),
            port=getattr(args, "port", 8000),
            concurrency=getattr(args, "concurrency", 2),
        )


main()
