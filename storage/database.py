"""The asyncpg pool: embedded or external server, migrations, pgvector codec on every connection."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import asyncpg
from pgvector.asyncpg import register_vector

from storage.embedded import EmbeddedPostgres
from storage.errors import DatabaseUnavailable
from storage.meta import EmbeddingSpace
from storage.migrate import (
    MIGRATION_LOCK_KEY,
    apply_migrations,
    check_embedding_space,
    pending_migrations,
)

logger = logging.getLogger("deskmate.storage")

# Connections reserved for claiming platform events (see Database.ack_pool).
ACK_POOL_SIZE = 2

# A pooled connection, as the rooms above storage name it when they pass one to a query module.
Connection = asyncpg.Connection

# The session settings PgBouncer passes on from a client's login; it refuses any other.
POOLER_STARTUP_SETTINGS = frozenset(
    {"application_name", "client_encoding", "datestyle", "timezone"}
)


class Pooler(StrEnum):
    """What sits between deskmate and PostgreSQL."""

    NONE = "none"
    # PgBouncer (or any pooler) in transaction mode: a client has one server session only for
    # the length of a transaction, so nothing may rely on a session outliving one.
    PGBOUNCER = "pgbouncer"


async def _init_connection(conn: asyncpg.Connection) -> None:
    # Every connection of the pool speaks `vector` as numpy arrays and jsonb as Python objects.
    await register_vector(conn)
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a connection needs before it goes back to the pool: nothing. deskmate keeps no
    session state on pooled connections (settings and role are SET LOCAL, locks are
    transaction-scoped), and asyncpg still rolls back a transaction left open; its default
    reset (unlock all, CLOSE ALL, UNLISTEN *, RESET ALL) would be one more round trip on every
    release."""


@dataclass(frozen=True)
class DatabaseConfig:
    """What storage needs to know to reach its database.

    `url` None means the embedded server under `data_dir`. `embedding_space` is the embedder
    the settings make vectors with: a new database is made for it (its dimension is templated
    into the migrations), and a database whose vectors are of another space is refused.
    `unrecorded_embedder` is the (provider, model) that made the vectors of a database from
    before the embedder was recorded, when that is not the configured one."""

    url: str | None
    data_dir: Path
    embedding_space: EmbeddingSpace
    unrecorded_embedder: tuple[str, str] | None = None
    pool_min_size: int = 1
    pool_max_size: int = 10
    pooler: Pooler = Pooler.NONE

    @property
    def transaction_pooled(self) -> bool:
        return self.pooler is Pooler.PGBOUNCER

    @property
    def connect_options(self) -> dict[str, Any]:
        """asyncpg's options for every connection: behind a transaction pooler no prepared
        statement is kept by name, as the next transaction may reach another server session
        ("prepared statement __asyncpg_stmt_1__ does not exist")."""
        return {"statement_cache_size": 0} if self.transaction_pooled else {}

    @property
    def embedding_dimension(self) -> int:
        return self.embedding_space.dimension

    def __repr__(self) -> str:  # the URL may hold a password
        where = "url=<set>" if self.url else f"data_dir={self.data_dir}"
        return f"DatabaseConfig({where}, embedding_space={self.embedding_space})"


@dataclass(frozen=True)
class Readiness:
    database: bool
    pending_migrations: tuple[str, ...]
    detail: str = ""

    @property
    def ready(self) -> bool:
        return self.database and not self.pending_migrations


class Database:
    """Owns the database connection for one process: `start()`, use `pool`, then `stop()`."""

    def __init__(self, config: DatabaseConfig) -> None:
        self.config = config
        self._dsn = config.url
        self._embedded: EmbeddedPostgres | None = None
        self._pool: asyncpg.Pool | None = None
        self._ack_pool: asyncpg.Pool | None = None

    @property
    def embedded(self) -> bool:
        return self._embedded is not None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("Database.start() has not been called")
        return self._pool

    @property
    def ack_pool(self) -> asyncpg.Pool:
        """A few connections kept for accepting platform events: the ack must not queue behind
        answers, which hold the main pool's connections while they search and record."""
        if self._ack_pool is None:
            raise RuntimeError("Database.start() has not been called")
        return self._ack_pool

    async def dsn(self) -> str:
        """The server's URL, starting the embedded server on first use."""
        if self._dsn is None:
            self._embedded = EmbeddedPostgres(self.config.data_dir)
            self._dsn = await self._embedded.start()
        return self._dsn

    async def connect(self) -> asyncpg.Connection:
        """One plain connection (no codecs): for migrations and admin work."""
        try:
            return await asyncpg.connect(await self.dsn(), **self.config.connect_options)
        except (OSError, asyncpg.PostgresError) as exc:
            raise DatabaseUnavailable(f"cannot connect to the database: {exc}") from exc

    async def connect_as(
        self, user: str, password: str, server_settings: dict[str, str]
    ) -> asyncpg.Connection:
        """One plain connection that logs in as another role (the alert sandbox's reader),
        never part of a pool: the caller closes it. asyncpg's errors pass through, so the caller
        can tell a refused password from a server that is down.

        Behind PgBouncer in transaction mode a setting made after login would stay on one
        server session while the caller's transactions run on others, and PgBouncer refuses
        most settings at login: only those it passes on are sent, and the role's own defaults
        (set by the migrations) hold for the rest."""
        if self.config.transaction_pooled:
            server_settings = {
                k: v for k, v in server_settings.items() if k.lower() in POOLER_STARTUP_SETTINGS
            }
        try:
            return await asyncpg.connect(
                await self.dsn(),
                user=user,
                password=password,
                server_settings=server_settings,
                **self.config.connect_options,
            )
        except asyncpg.ProtocolViolationError as exc:
            # PgBouncer refuses a password with a protocol error (08P01), PostgreSQL with 28P01:
            # either way the caller is told it was the password.
            if "authentication failed" not in str(exc):
                raise
            raise asyncpg.InvalidPasswordError(str(exc)) from exc

    async def migrate(self, *, check_embeddings: bool = True) -> list[str]:
        """Apply pending migrations; return the versions this call applied. Then, unless told
        not to, refuse (SchemaMismatch) a database whose vectors another embedder made."""
        conn = await self.connect()
        try:
            applied = await self._apply_migrations(conn)
            if check_embeddings:
                await self._check_embeddings(conn)
            return applied
        finally:
            await conn.close()

    async def _apply_migrations(self, conn: asyncpg.Connection) -> list[str]:
        dimension = self.config.embedding_dimension
        if not self.config.transaction_pooled:
            return await apply_migrations(conn, embedding_dimension=dimension)
        # The migration lock is a session's; behind a transaction pooler a session lasts one
        # transaction, so the run is one transaction (each file a savepoint in it), and a
        # transaction-scoped lock keeps other replicas out until it commits.
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
            return await apply_migrations(conn, embedding_dimension=dimension)

    async def start(self, *, migrate: bool = True, check_embeddings: bool = True) -> None:
        """Reach the server, bring the schema up to date, and open the pool.

        `check_embeddings=False` is for the one caller that works on a database of another
        embedding space on purpose: the reindex."""
        if migrate:
            applied = await self.migrate(check_embeddings=check_embeddings)
            if applied:
                logger.info("applied migrations %s", ", ".join(applied))
        elif check_embeddings:
            conn = await self.connect()
            try:
                await self._check_embeddings(conn)
            finally:
                await conn.close()
        try:
            self._pool = await self._open_pool(self.config.pool_min_size, self.config.pool_max_size)
            self._ack_pool = await self._open_pool(1, ACK_POOL_SIZE)
        except (OSError, asyncpg.PostgresError) as exc:
            raise DatabaseUnavailable(f"cannot open the database pool: {exc}") from exc

    async def _open_pool(self, min_size: int, max_size: int) -> asyncpg.Pool:
        return await asyncpg.create_pool(
            await self.dsn(),
            min_size=min(min_size, max_size),
            max_size=max_size,
            init=_init_connection,
            reset=_keep_session,
            **self.config.connect_options,
        )

    async def _check_embeddings(self, conn: asyncpg.Connection) -> None:
        await check_embedding_space(
            conn, self.config.embedding_space, unrecorded=self.config.unrecorded_embedder
        )

    async def stop(self) -> None:
        """Close the pool, then leave the embedded server (if this process started one)."""
        pools = [p for p in (self._pool, self._ack_pool) if p is not None]
        self._pool = self._ack_pool = None
        for pool in pools:
            try:
                await pool.close()
            except Exception:  # closing must not hide why we are stopping
                logger.exception("closing the database pool failed")
                pool.terminate()
        if self._embedded is not None:
            await self._embedded.stop()
            self._embedded = None

    async def readiness(self) -> Readiness:
        """Is the database reachable and fully migrated? (for `/readyz`)"""
        try:
            async with self.pool.acquire(timeout=2) as conn:
                pending = await pending_migrations(conn)
        except (OSError, TimeoutError, asyncpg.PostgresError, RuntimeError) as exc:
            return Readiness(database=False, pending_migrations=(), detail=type(exc).__name__)
        return Readiness(database=True, pending_migrations=tuple(pending))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection inside one transaction."""
        async with self.pool.acquire() as conn, conn.transaction():
            yield conn
