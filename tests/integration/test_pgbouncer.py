"""deskmate behind a real PgBouncer in transaction mode (DATABASE_POOLER=pgbouncer).

PgBouncer gives a client one server session only for the length of a transaction. What relied
on a session outliving one broke: asyncpg's cached prepared statements, the migration lock, and
the alert sandbox's login (PgBouncer refuses a stale password with another error code).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bot.settings import Settings, load_settings
from storage import alert_metrics
from storage.database import Database
from storage.migrate import MIGRATION_LOCK_KEY, load_migrations
from tests.support import TEST_DIMENSION

NOW = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def bouncer(pg_server: Any, pgbouncer: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The run's PgBouncer (--pgbouncer), else one of this module's own."""
    from tests.support.postgres import pgbouncer_available, start_pgbouncer

    if pgbouncer is not None:
        yield pgbouncer
        return
    if not pgbouncer_available():
        pytest.skip("pgbouncer is not installed (apt-get install -y pgbouncer)")
    own = start_pgbouncer(pg_server, tmp_path_factory.mktemp("pgbouncer"))
    yield own
    own.stop()


@pytest.fixture
def bounced_url(pg_server: Any, bouncer: Any) -> Iterator[str]:
    """A migrated database of this test's own, reached through PgBouncer."""
    from tests.support.postgres import database

    yield from database(pg_server, bouncer=bouncer)


@pytest.fixture
def bounced_empty_url(pg_server: Any, bouncer: Any) -> Iterator[str]:
    from tests.support.postgres import database

    yield from database(pg_server, template="template0", bouncer=bouncer)


def _settings(url: str, tmp_path: Path, pooler: str) -> Settings:
    return load_settings(
        env_file=None,
        database_url=url,
        database_pooler=pooler,
        deskmate_data_dir=tmp_path / "data",
        embedding_provider="hash",
        embedding_dimension=TEST_DIMENSION,
        scheduler_enabled=False,
    )


async def _concurrent_queries(db: Database, count: int = 400) -> list[BaseException]:
    async def one(i: int) -> None:
        assert await db.pool.fetchval("SELECT $1::int + $2::int", i, 1) == i + 1

    results = await asyncio.gather(*(one(i) for i in range(count)), return_exceptions=True)
    return [r for r in results if isinstance(r, BaseException)]


async def test_without_the_pooler_setting_queries_fail_behind_pgbouncer(
    bounced_url: str, tmp_path: Path
) -> None:
    """What an operator saw: 'prepared statement "__asyncpg_stmt_…" does not exist'."""
    db = Database(_settings(bounced_url, tmp_path, "none").database)
    try:
        await db.start(migrate=False)  # may already fail, registering the pool's codecs
        errors = await _concurrent_queries(db)
    except asyncpg.InvalidSQLStatementNameError as exc:
        errors = [exc]
    finally:
        await db.stop()
    assert errors
    assert all(isinstance(e, asyncpg.InvalidSQLStatementNameError) for e in errors)


async def test_with_database_pooler_pgbouncer_every_query_succeeds(
    bounced_url: str, tmp_path: Path
) -> None:
    db = Database(_settings(bounced_url, tmp_path, "pgbouncer").database)
    await db.start()
    try:
        assert await _concurrent_queries(db) == []
        assert (await db.readiness()).ready
    finally:
        await db.stop()


async def test_replicas_starting_together_migrate_once_and_leave_the_lock_free(
    bounced_empty_url: str, pg_server: Any, tmp_path: Path
) -> None:
    replicas = [
        Database(_settings(bounced_empty_url, tmp_path / str(n), "pgbouncer").database)
        for n in range(3)
    ]
    applied = await asyncio.wait_for(asyncio.gather(*(r.migrate() for r in replicas)), 60)
    versions = [m.version for m in load_migrations()]
    assert sorted(v for batch in applied for v in batch) == versions  # each file once

    # A fourth start does not wait for a lock some pooled server session kept.
    late = Database(_settings(bounced_empty_url, tmp_path / "late", "pgbouncer").database)
    assert await asyncio.wait_for(late.migrate(), 10) == []
    conn = await asyncpg.connect(bounced_empty_url, statement_cache_size=0)
    try:
        free = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1::bigint"
        assert await conn.fetchval(free, MIGRATION_LOCK_KEY & 0xFFFFFFFF) == 0
    finally:
        await conn.close()


@pytest.fixture
async def bounced_db(bounced_url: str, tmp_path: Path) -> Any:
    db = Database(_settings(bounced_url, tmp_path, "pgbouncer").database)
    await db.start()
    yield db
    await db.stop()


async def _one_question(db: Database) -> None:
    async with db.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO query_log (tenant_id, platform, query_text, answer_status, created_at) "
            "VALUES (1, 'web', 'q', 'answered', $1)",
            NOW - dt.timedelta(minutes=1),
        )


async def _measure(db: Database, sql: str) -> float | None:
    return await alert_metrics.custom_metric(db, sql, 1, NOW - dt.timedelta(hours=1), NOW)


async def test_custom_sql_rules_evaluate_again_and_again_behind_pgbouncer(
    bounced_db: Database,
) -> None:
    """Each evaluation prepares its query on whatever server session PgBouncer lends it; the
    session is reset after every transaction, so the next evaluation finds it clean."""
    await _one_question(bounced_db)
    for _ in range(5):
        assert await _measure(bounced_db, "SELECT count(*) FROM query_log") == 1


async def test_the_alert_reader_logs_in_again_after_its_password_changed(
    bounced_db: Database, pg_server: Any
) -> None:
    """Another database of the same server set the reader's password: PgBouncer refuses the
    stored one (as a protocol error, not PostgreSQL's 28P01), and deskmate sets a new one."""
    await _one_question(bounced_db)
    admin = await asyncpg.connect(pg_server.get_uri())
    try:
        await admin.execute("ALTER ROLE deskmate_alert_sql PASSWORD 'set-by-someone-else'")
    finally:
        await admin.close()
    assert await _measure(bounced_db, "SELECT count(*) FROM query_log") == 1
