"""The admin console (SPEC §3, §7): server-rendered pages under `/console` for super users and
department heads; everyone else gets 403. Who is looking: see access.py."""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from aiohttp import web

from bot.console import Console
from bot.runtime import Runtime
from handlers.console import pages
from handlers.console.access import CONSOLE, ConsoleState, console_page
from handlers.http import BIND_HOST
from handlers.webchat import Access, access_mode
from storage.tenants import DEFAULT_TENANT

logger = logging.getLogger("deskmate.console")

STATIC = Path(__file__).parent / "static"


def install(app: web.Application, runtime: Runtime) -> None:
    """The console's pages, when the web surface can say who is looking."""
    access = access_mode(app[BIND_HOST], runtime.settings)
    if access not in (Access.OPEN, Access.SIGNIN):
        logger.info("admin console off: it needs sign-in or a loopback address")
        return
    console = Console(runtime.db, DEFAULT_TENANT, runtime.settings)
    app[CONSOLE] = ConsoleState(runtime, console, access, secrets.token_urlsafe(32))
    app.router.add_static("/console/static/", STATIC)
    for method, path, handler in pages.ROUTES:
        app.router.add_route(method, path, console_page(handler))
    logger.info("admin console on /console (%s)", access.value)
