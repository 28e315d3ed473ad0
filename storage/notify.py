"""Telling the other replicas that something changed in the web chat: PostgreSQL NOTIFY, and
one dedicated connection per replica that LISTENs.

A note carries ids only (tenant, post or message, the asker, what happened), never content:
a NOTIFY payload is limited to 8,000 bytes and anyone who may LISTEN on the database can read
it. The receiver reads the rows themselves. NOTIFY sent inside a transaction is delivered at
commit and in commit order, and not at all when it rolls back.

LISTEN needs a session of its own that outlives any transaction: a transaction pooler
(PgBouncer in transaction mode) cannot carry it, so the listening connection may have its own
URL that reaches PostgreSQL directly.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import asyncpg

from storage.errors import DatabaseUnavailable

logger = logging.getLogger("deskmate.storage")

CHANNEL = "deskmate_webchat"
# How the listening session shows in pg_stat_activity (and how an operator finds it).
APPLICATION_NAME = "deskmate webchat listener"
CONNECT_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class Note:
    """Something another replica's pages may need to show.

    `kind` is "post" (a channel post was made), "update" (one was edited), "answer" (an answer
    only the asker sees: a direct message or a command's reply) or "error" (answering failed).
    `origin` names the replica that sent it, which has already shown it to its own pages."""

    kind: str
    tenant: int
    origin: str
    post: int | None = None
    message: int | None = None  # the stored answer (session_messages.id)
    user: int | None = None  # the asker
    reply_to: str | None = None  # the question's post id as the page knows it ("p12", "q-…")
    channel: str | None = None  # a web channel ("#sales"); None for direct messages
    reference: str | None = None  # an error's reference id

    def encode(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v is not None})


_KINDS = {"post", "update", "answer", "error"}
_NUMBERS = {"tenant", "post", "message", "user"}
_FIELDS = {f.name for f in fields(Note)}


def decode(payload: str) -> Note | None:
    """The note in a NOTIFY payload; None (and a log line) for anything else on the channel."""
    try:
        data = json.loads(payload)
    except ValueError:
        data = None
    if not isinstance(data, dict) or data.get("kind") not in _KINDS or not _well_typed(data):
        logger.warning("ignored a notification on %s that is not a web chat note", CHANNEL)
        return None
    return Note(**data)


def _well_typed(data: dict[str, Any]) -> bool:
    for name, value in data.items():
        wanted = int if name in _NUMBERS else str
        if name not in _FIELDS or isinstance(value, bool) or not isinstance(value, wanted):
            return False
    return {"tenant", "origin"} <= data.keys()


async def announce(conn: asyncpg.Connection, note: Note) -> None:
    """Send the note; inside a transaction it leaves at commit, with the rows it is about."""
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, note.encode())


class Listening:
    """One connection LISTENing on the web chat's channel, outside any pool."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self._lost = asyncio.Event()
        conn.add_termination_listener(lambda _: self._lost.set())

    @property
    def backend_pid(self) -> int:
        """The server process of this session (pg_stat_activity.pid)."""
        return self._conn.get_server_pid()

    @property
    def lost(self) -> bool:
        return self._lost.is_set() or self._conn.is_closed()

    async def wait_lost(self) -> None:
        """Return when the server ends the session (restart, pg_terminate_backend, network)."""
        await self._lost.wait()

    async def alive(self, within: float) -> bool:
        """Does the server still answer on this session? A dead network does not always close
        the socket, so silence is checked, not only waited for."""
        try:
            await self._conn.execute("SELECT 1", timeout=within)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            self._lost.set()
            return False
        return True

    async def close(self) -> None:
        if self._conn.is_closed():
            return
        try:
            await asyncio.wait_for(self._conn.close(), timeout=2)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            self._conn.terminate()


async def listen(dsn: str, on_note: Callable[[Note], None]) -> Listening:
    """Open the listening session; `on_note` gets every well-formed note, in commit order."""

    def heard(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        note = decode(payload)
        if note is not None:
            on_note(note)

    try:
        conn = await asyncpg.connect(
            dsn, timeout=CONNECT_TIMEOUT_SECONDS,
            server_settings={"application_name": APPLICATION_NAME},
        )  # fmt: skip
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailable(f"cannot open the listening connection: {exc}") from exc
    listening = Listening(conn)
    try:
        await conn.add_listener(CHANNEL, heard)
    except BaseException as exc:
        conn.terminate()
        if isinstance(exc, (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)):
            raise DatabaseUnavailable(f"cannot LISTEN: {exc}") from exc
        raise
    return listening
