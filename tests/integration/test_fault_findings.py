"""What the fault suite (`make faults`) found: an answer that ended while PostgreSQL was away
was answered again by another replica, and a message answered a second time (its first replica
died) was stored twice in the person's conversation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import pytest

from bot.event_ledger import EventLedger
from bot.messages import IncomingMessage
from bot.runtime import Runtime
from bot.settings import Settings
from storage.database import Database
from tests.support.factories import add_user


@asynccontextmanager
async def refusing_connections(pg_server: Any, database_url: str) -> AsyncIterator[None]:
    """The test's database refuses new connections and loses its open ones, as during a
    restart, until the block ends."""
    name = urlsplit(database_url).path.lstrip("/")
    admin = await asyncpg.connect(pg_server.get_uri())
    try:
        await admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = $1", name)  # fmt: skip
        yield
    finally:
        await admin.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        await admin.close()


async def status_of(db: Database) -> str:
    async with db.pool.acquire() as conn:
        return str(await conn.fetchval("SELECT status FROM processed_events"))


async def test_an_answer_that_ends_while_postgresql_is_away_is_not_answered_again(
    pg_server: Any, database_url: str, db: Database
) -> None:
    ledger = EventLedger(db, lease_seconds=8)
    ledger.on_resume("slack", lambda payload: asyncio.sleep(0))
    assert await ledger.claim("slack", "T1:D1:1.0", payload={"text": "hi"})
    async with refusing_connections(pg_server, database_url):
        # The answer was shown; recording its end meets a database that is not there.
        ending = asyncio.create_task(ledger.finish("slack", "T1:D1:1.0", ok=True))
        await asyncio.sleep(1.0)
        assert not ending.done()
    await asyncio.wait_for(ending, timeout=5)
    assert await status_of(db) == "done"
    async with db.pool.acquire() as conn:  # however long ago that was, it is never resumed
        await conn.execute("UPDATE processed_events SET updated_at = now() - interval '1 hour'")
    assert await ledger.sweep(lambda *args, **kwargs: None) == 0


async def test_recording_an_end_gives_up_after_a_lease_and_says_why(
    pg_server: Any, database_url: str, db: Database
) -> None:
    ledger = EventLedger(db, lease_seconds=1)
    assert await ledger.claim("slack", "T1:D1:2.0", payload={"text": "hi"})
    async with refusing_connections(pg_server, database_url):
        with pytest.raises(asyncpg.PostgresError, match="not currently accepting connections"):
            await asyncio.wait_for(ledger.finish("slack", "T1:D1:2.0", ok=True), timeout=5)
    assert await status_of(db) == "processing"  # left to the sweeper, as before


async def test_a_message_answered_again_after_a_crash_is_in_the_conversation_once(
    settings: Settings, db: Database
) -> None:
    await add_user(db, "ana@example.com", ["sales"])
    runtime = Runtime(settings)
    await runtime.start()
    message = IncomingMessage(
        platform="slack", user_id="U-ANA", conversation_id="D1", text="where is the policy?",
        is_direct=True, message_id="1700000000.000100", trusted_email="ana@example.com",
    )  # fmt: skip
    try:
        await runtime.conversation.handle(message)  # the replica that died after this
        await runtime.conversation.handle(message)  # the sweeper's second attempt
        await runtime.conversation.handle(replace(message, message_id="1700000001.000100"))
    finally:
        await runtime.stop()
    async with db.pool.acquire() as conn:
        said = await conn.fetch("SELECT role, platform_message_id FROM session_messages "
                                "WHERE role = 'user' ORDER BY sequence_number")  # fmt: skip
        count = await conn.fetchval("SELECT message_count FROM chat_sessions")
    assert [r["platform_message_id"] for r in said] == ["1700000000.000100", "1700000001.000100"]
    assert count == 5  # two questions, three replies: the count still matches the rows
