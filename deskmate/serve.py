"""`deskmate serve`: the whole process (see deskmate/process.py) until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from bot.runtime import Runtime
from bot.settings import Settings
from deskmate.platforms import installers
from deskmate.process import Process
from deskmate.tracing import start_tracing

logger = logging.getLogger("deskmate.serve")


async def serve(settings: Settings, *, host: str, port: int) -> None:
    """Run until SIGTERM or SIGINT; then stop accepting, finish in-flight work, close the pool."""
    process = Process(settings, installers(settings), host=host, port=port)
    process.check_address()  # a busy port is reported before the database is started
    tracing = start_tracing(settings)  # before the HTTP app exists: it wraps web.Application
    try:
        await _run(process, settings, host, port)
    finally:
        if tracing is not None:
            tracing.stop()
    logger.info("stopped")


async def _run(process: Process, settings: Settings, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await process.start()
        try:
            _announce(settings, process.runtime, host, port)
            await stop.wait()
            logger.info("stopping: finishing requests in flight")
        finally:
            await process.stop()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def _announce(settings: Settings, runtime: Runtime, host: str, port: int) -> None:
    """A few lines a newcomer can act on: where to click, where the data is, what is on."""
    from handlers.webchat import Access, access_mode, describe, url

    data = (
        f"  data directory: {settings.data_dir} (embedded PostgreSQL)"
        if runtime.db.embedded
        else "  database:       PostgreSQL at DATABASE_URL"
    )
    llm = (
        f"Claude ({settings.anthropic_model})"
        if settings.llm_enabled
        else "offline: quotes the documents (set ANTHROPIC_API_KEY for Claude)"
    )
    platforms = ", ".join(
        f"{name} {'on' if on else 'off'}"
        for name, on in (
            ("web chat", access_mode(host, settings) is not Access.DISABLED),
            ("Slack", settings.slack_enabled),
            ("Teams", settings.teams_enabled),
        )
    )
    lines = [
        f"deskmate is listening on {url(host, port)}",
        f"  web chat:       {describe(host, port, settings)}",
        data,
        f"  platforms:      {platforms}",
        f"  language model: {llm}",
        "  stop with Ctrl-C",
    ]
    print("\n".join(lines), flush=True)
