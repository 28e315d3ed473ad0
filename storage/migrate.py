"""Ordered plain-SQL migrations from `storage/migrations/`, applied once each.

The whole run holds a PostgreSQL advisory lock, so replicas starting together queue up instead
of applying a file twice; each file runs in its own transaction with its `schema_migrations` row.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from storage.errors import DatabaseUnavailable, SchemaMismatch

logger = logging.getLogger("deskmate.storage.migrate")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# An arbitrary constant: the advisory lock key all deskmate replicas agree on.
MIGRATION_LOCK_KEY = 0x6465736B6D617465  # "deskmate"

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()[:16]


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every `NNNN_name.sql` file of the directory, in version order."""
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        version, _, name = path.stem.partition("_")
        migrations.append(Migration(version=version, name=name, sql=path.read_text("utf-8")))
    return migrations


def render(sql: str, *, embedding_dimension: int) -> str:
    """Fill the placeholders a migration may use."""
    return sql.replace("{{EMBEDDING_DIMENSION}}", str(int(embedding_dimension)))


async def applied_versions(conn: asyncpg.Connection) -> set[str]:
    """Versions recorded in `schema_migrations` (empty when the ledger does not exist yet)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return set()
    return {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}


async def pending_migrations(conn: asyncpg.Connection) -> list[str]:
    """Versions shipped with this build that the database has not applied."""
    done = await applied_versions(conn)
    return [m.version for m in load_migrations() if m.version not in done]


async def check_embedding_dimension(conn: asyncpg.Connection, expected: int) -> None:
    """Refuse a database created with another embedding size than the one configured."""
    if not await conn.fetchval("SELECT to_regclass('deskmate_meta') IS NOT NULL"):
        return
    stored = await conn.fetchval(
        "SELECT value FROM deskmate_meta WHERE key = 'embedding_dimension'"
    )
    if stored is not None and int(stored) != expected:
        raise SchemaMismatch(
            f"the database was created with EMBEDDING_DIMENSION={stored} but the setting is "
            f"{expected}; set EMBEDDING_DIMENSION={stored} or use a new database"
        )


async def apply_migrations(conn: asyncpg.Connection, *, embedding_dimension: int) -> list[str]:
    """Apply every pending migration; return the versions applied by this call."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await check_embedding_dimension(conn, embedding_dimension)
        await conn.execute(_CREATE_LEDGER)
        done = await applied_versions(conn)
        applied = []
        for migration in load_migrations():
            if migration.version in done:
                continue
            await _apply_one(conn, migration, embedding_dimension)
            applied.append(migration.version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)


async def _apply_one(conn: asyncpg.Connection, migration: Migration, dimension: int) -> None:
    logger.info("applying migration %s_%s", migration.version, migration.name)
    try:
        async with conn.transaction():
            await conn.execute(render(migration.sql, embedding_dimension=dimension))
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
    except asyncpg.FeatureNotSupportedError as exc:
        # CREATE EXTENSION vector on a server without pgvector installed.
        raise DatabaseUnavailable(
            f"migration {migration.version} failed: {exc} "
            "(the database server needs the pgvector extension installed)"
        ) from exc
    except asyncpg.PostgresError as exc:
        raise DatabaseUnavailable(
            f"migration {migration.version}_{migration.name} failed: {exc}"
        ) from exc
