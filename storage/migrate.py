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

from storage import meta
from storage.errors import DatabaseUnavailable, SchemaMismatch
from storage.meta import EmbeddingSpace

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


async def embedding_space(
    conn: asyncpg.Connection,
    configured: EmbeddingSpace,
    *,
    unrecorded: tuple[str, str] | None = None,
) -> EmbeddingSpace | None:
    """The embedder that made the database's vectors (None before the first migration).

    A database that records only its dimension (a new one, or one made before deskmate recorded
    its embedder) takes the configured embedder while it holds no vectors; the vectors it holds
    are taken to be `unrecorded`'s (provider, model), by default the configured ones. An
    embedder taken so is recorded, so a later change of settings is noticed."""
    assumed = unrecorded or (configured.provider, configured.model)
    stored = await meta.recorded_space(conn, unrecorded=assumed)
    if stored is None or await meta.is_space_recorded(conn):
        return stored
    if stored == configured or (
        stored.dimension == configured.dimension and not await meta.holds_vectors(conn)
    ):
        await meta.adopt_space(conn, configured)
        # Re-read: another replica may have recorded its own embedder a moment earlier.
        stored = await meta.recorded_space(conn, unrecorded=assumed)
    return stored


async def check_embedding_space(
    conn: asyncpg.Connection,
    configured: EmbeddingSpace,
    *,
    unrecorded: tuple[str, str] | None = None,
) -> None:
    """Refuse (SchemaMismatch) a database whose vectors another embedder made than the
    configured one; see `embedding_space` for databases that do not record theirs."""
    stored = await embedding_space(conn, configured, unrecorded=unrecorded)
    if stored is not None and stored != configured:
        raise SchemaMismatch(
            f"the database holds vectors of {stored} but the settings ask for {configured}: "
            f"run `deskmate reindex` to re-embed everything with the configured embedder, or set "
            f"{stored.settings} to use the database as it is"
        )


async def apply_migrations(conn: asyncpg.Connection, *, embedding_dimension: int) -> list[str]:
    """Apply every pending migration; return the versions applied by this call.

    `{{EMBEDDING_DIMENSION}}` is the database's recorded size, or `embedding_dimension` for a
    database the first migration creates."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        # A database that exists keeps the size it has (a reindex may have changed it since it
        # was created); `embedding_dimension` sizes the vector columns of a new one.
        embedding_dimension = await meta.recorded_dimension(conn) or embedding_dimension
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
