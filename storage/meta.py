"""deskmate_meta: small facts about the database itself (the embedding space, demo seeded)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

# The keys that record which embedder made the database's vectors.
_PROVIDER, _MODEL, _DIMENSION = "embedding_provider", "embedding_model", "embedding_dimension"


@dataclass(frozen=True)
class EmbeddingSpace:
    """The embedder that made a set of vectors: vectors are comparable only within one space."""

    provider: str
    model: str
    dimension: int

    def __str__(self) -> str:
        return f"{self.provider} {self.model} ({self.dimension} dimensions)"

    @property
    def settings(self) -> str:
        """The settings that make vectors of this space."""
        return (
            f"EMBEDDING_PROVIDER={self.provider} EMBEDDING_MODEL={self.model} "
            f"EMBEDDING_DIMENSION={self.dimension}"
        )


async def get_value(conn: asyncpg.Connection, key: str) -> str | None:
    return await conn.fetchval("SELECT value FROM deskmate_meta WHERE key = $1", key)


async def set_value(conn: asyncpg.Connection, key: str, value: str) -> None:
    await conn.execute(
        """
        INSERT INTO deskmate_meta (key, value) VALUES ($1, $2)
        ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value
        """,
        key,
        value,
    )


async def recorded_dimension(conn: asyncpg.Connection) -> int | None:
    """The size of the vector columns, as the first migration recorded it (None before it)."""
    if not await conn.fetchval("SELECT to_regclass('deskmate_meta') IS NOT NULL"):
        return None
    stored = await get_value(conn, _DIMENSION)
    return int(stored) if stored is not None else None


async def recorded_space(
    conn: asyncpg.Connection, *, unrecorded: tuple[str, str]
) -> EmbeddingSpace | None:
    """The space of the database's vectors; None before the first migration.

    Databases made before deskmate recorded its embedder hold only the dimension: their
    provider and model are taken to be `unrecorded` (provider, model)."""
    dimension = await recorded_dimension(conn)
    if dimension is None:
        return None
    provider, model = await get_value(conn, _PROVIDER), await get_value(conn, _MODEL)
    if provider is None or model is None:
        provider, model = unrecorded
    return EmbeddingSpace(provider, model, dimension)


async def is_space_recorded(conn: asyncpg.Connection) -> bool:
    return await get_value(conn, _PROVIDER) is not None


async def adopt_space(conn: asyncpg.Connection, space: EmbeddingSpace) -> None:
    """Record `space` unless another process recorded one first (race-safe, no overwrite)."""
    async with conn.transaction():
        for key, value in ((_PROVIDER, space.provider), (_MODEL, space.model)):
            await conn.execute(
                "INSERT INTO deskmate_meta (key, value) VALUES ($1, $2) "
                "ON CONFLICT (key) DO NOTHING",
                key,
                value,
            )


async def record_space(conn: asyncpg.Connection, space: EmbeddingSpace) -> None:
    """Record `space` as the one the database's vectors are in (after a reindex)."""
    await set_value(conn, _PROVIDER, space.provider)
    await set_value(conn, _MODEL, space.model)
    await set_value(conn, _DIMENSION, str(space.dimension))


async def holds_vectors(conn: asyncpg.Connection) -> bool:
    """Does any chunk or memory exist (of any tenant)?"""
    return await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM document_chunks) OR EXISTS (SELECT 1 FROM memories)"
    )
