"""The composition root: one deskmate process's parts, started in order and stopped in reverse.

pool and core (`bot.runtime.Runtime`) → platform edges (`handlers`, on an aiohttp server when the
process serves HTTP) → the scheduler loop (`scheduler.loop`, when enabled). The scheduler starts
last so that every platform's sender is registered before its first delivery, and stops first so
that no delivery starts while the platforms close. Each stage's stop is bounded.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Sequence

from aiohttp import web

from bot.errors import ConfigError
from bot.runtime import Runtime
from bot.settings import Settings
from handlers.http import Installer, create_app
from scheduler.loop import Scheduler

logger = logging.getLogger("deskmate.process")

# How long requests in flight may take to finish once the process stops.
HTTP_SHUTDOWN_SECONDS = 10.0


class Process:
    """`start()` brings the parts up in order, `stop()` takes them down in reverse.

    Without `installers` and `port` it is a process without an HTTP face (the scheduler and
    the core only); CLI commands that need neither HTTP nor the scheduler use a bare Runtime."""

    def __init__(
        self,
        settings: Settings,
        installers: Sequence[Installer] = (),
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
    ) -> None:
        self.settings = settings
        self.runtime = Runtime(settings)
        self.installers = installers
        self.host, self.port = host, port
        self.runner: web.AppRunner | None = None
        self.scheduler: Scheduler | None = None

    async def start(self) -> None:
        """Core, then platforms, then the scheduler; a failure stops what had started."""
        await self.runtime.start()
        try:
            if self.port is not None:
                await self._start_http(self.port)
            if self.settings.scheduler_enabled:
                self.scheduler = Scheduler(self.runtime)
                self.scheduler.start()
        except BaseException:
            await self.stop()
            raise

    async def _start_http(self, port: int) -> None:
        app = create_app(self.runtime, self.installers, host=self.host)
        self.runner = web.AppRunner(app, shutdown_timeout=HTTP_SHUTDOWN_SECONDS, access_log=None)
        await self.runner.setup()
        try:
            await web.TCPSite(self.runner, self.host, port).start()
        except OSError as exc:  # taken since check_address said it was free
            raise ConfigError(address_problem(self.host, port, exc)) from None

    def check_address(self) -> None:
        """Raise ConfigError now, before the slow start, when the HTTP address cannot be had."""
        if self.port:
            check_address(self.host, self.port)

    async def stop(self) -> None:
        """Scheduler, then platforms (requests in flight finish), then the core and the pool."""
        if self.scheduler is not None:
            await self.scheduler.stop()
            self.scheduler = None
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        await self.runtime.stop()


def address_problem(host: str, port: int, exc: OSError) -> str:
    """The one line an operator reads when `deskmate serve` cannot listen."""
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is in use (another deskmate?); choose another with --port"
    reason = exc.strerror or type(exc).__name__
    return f"cannot listen on {host} port {port}: {reason}"


def check_address(host: str, port: int) -> None:
    """Bind `host:port` the way the HTTP server will (address reuse on), then let it go; a
    port in use or an address this machine does not have raises ConfigError."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {host}: {exc.strerror}") from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise ConfigError(address_problem(host, port, exc)) from None
