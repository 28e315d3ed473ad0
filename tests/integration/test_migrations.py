"""Migrations: applied once each, idempotent, safe when replicas start together."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from bot.settings import load_settings
from storage.database import Database
from storage.errors import SchemaMismatch
from storage.migrate import apply_migrations, load_migrations, pending_migrations
from tests.support import TEST_DIMENSION

SHIPPED = [m.version for m in load_migrations()]


async def test_fresh_database_gets_every_migration_once(fresh_database: str) -> None:
    conn = await asyncpg.connect(fresh_database)
    try:
        first = await apply_migrations(conn, embedding_dimension=TEST_DIMENSION)
        second = await apply_migrations(conn, embedding_dimension=TEST_DIMENSION)
        ledger = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert await pending_migrations(conn) == []
    finally:
        await conn.close()
    assert first == SHIPPED
    assert second == []
    assert [r["version"] for r in ledger] == SHIPPED


async def test_concurrent_runs_in_one_process_apply_each_file_once(fresh_database: str) -> None:
    conns = [await asyncpg.connect(fresh_database) for _ in range(4)]
    try:
        results = await asyncio.gather(
            *(apply_migrations(c, embedding_dimension=TEST_DIMENSION) for c in conns)
        )
        count = await conns[0].fetchval("SELECT count(*) FROM schema_migrations")
    finally:
        for c in conns:
            await c.close()
    applied = sorted(v for result in results for v in result)
    assert applied == SHIPPED  # every file exactly once across the four runs
    assert count == len(SHIPPED)


async def test_dimension_guard_refuses_a_database_of_another_size(
    database_url: str, tmp_path
) -> None:
    settings = load_settings(
        env_file=None,
        database_url=database_url,
        deskmate_data_dir=tmp_path,
        embedding_provider="hash",
        embedding_dimension=TEST_DIMENSION * 2,
    )
    db = Database(settings.database)
    with pytest.raises(SchemaMismatch) as caught:
        await db.start()
    await db.stop()
    message = str(caught.value)
    assert f"EMBEDDING_DIMENSION={TEST_DIMENSION}" in message
    assert str(TEST_DIMENSION * 2) in message
    assert "deskmate reindex" in message


async def test_missing_migration_makes_readiness_fail(db: Database) -> None:
    assert (await db.readiness()).ready
    async with db.pool.acquire() as conn:
        await conn.execute("DELETE FROM schema_migrations WHERE version = $1", SHIPPED[-1])
    readiness = await db.readiness()
    assert not readiness.ready
    assert readiness.pending_migrations == (SHIPPED[-1],)
