"""``python -m cli {up,demo,migrate}``."""

from __future__ import annotations

import argparse

from cli import demo, up
from models.migrate import upgrade_to_head


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
    args = parser.parse_args()

    if args.command == "demo":
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
