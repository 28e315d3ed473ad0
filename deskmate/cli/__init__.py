"""The `deskmate` command line: one parser, one line per error, exit codes 0 / 1 / 2."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

from bot import logs
from bot.errors import ConfigError, DeskmateError, UsageError, from_storage
from bot.settings import Settings, load_settings
from storage.errors import StorageError

Command = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> Parser:
    from deskmate.cli import admin, alerts, budget, docs, reindex, schedule, service, talk

    parser = Parser(
        prog="deskmate",
        description="A chat bot for Slack and Teams, grounded in memories and department docs.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    service.register(commands)
    admin.register(commands)
    docs.register(commands)
    reindex.register(commands)
    talk.register(commands)
    schedule.register(commands)
    alerts.register(commands)
    budget.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `deskmate` console script."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"deskmate: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    # Admin commands print their own results; their INFO chatter would only bury them.
    quiet = args.command != "serve" and "log_level" not in settings.model_fields_set
    logs.configure("WARNING" if quiet else settings.log_level, settings.log_format)
    # APScheduler logs every job run at INFO: every few seconds, nothing an operator needs.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    command: Command = args.handler
    try:
        return asyncio.run(_translated(command(args, settings)))
    except UsageError as exc:
        print(f"deskmate {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DeskmateError as exc:
        print(f"deskmate {args.command}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


async def _translated(command: Coroutine[Any, Any, int]) -> int:
    """Storage's errors reach the person as deskmate's (the same one-line message)."""
    try:
        return await command
    except StorageError as exc:
        raise from_storage(exc) from exc


def run() -> None:
    sys.exit(main())
