"""`deskmate serve` and `deskmate migrate`."""

from __future__ import annotations

import argparse
from typing import Any

from bot.settings import Settings
from storage.database import Database


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not between 0 and 65535")
    return port


def register(commands: Any) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the service (HTTP endpoints and scheduler)",
        description="Run the service: Slack, Teams and web chat endpoints, health and metrics.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    serve.add_argument("--port", type=_port, default=3000, help="port (default: %(default)s)")
    serve.set_defaults(handler=run_serve)

    migrate = commands.add_parser(
        "migrate",
        help="apply pending database migrations",
        description="Apply pending SQL migrations; safe to run from several replicas at once.",
    )
    migrate.set_defaults(handler=run_migrate)


async def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    from deskmate.serve import serve

    await serve(settings, host=args.host, port=args.port)
    return 0


async def run_migrate(args: argparse.Namespace, settings: Settings) -> int:
    db = Database(settings.database)
    try:
        applied = await db.migrate()
    finally:
        await db.stop()
    if applied:
        print(f"applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        print("the database is up to date")
    return 0
