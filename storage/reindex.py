"""The SQL of `deskmate reindex`: new vectors filled in beside the old ones, then swapped in.

Each table with vectors gets a staging column, `embedding_next`, sized for the new embedder and
stored as `embedding` is. Batches fill it and commit one by one, so a killed run leaves its
progress behind and the service keeps answering from `embedding` meanwhile; a row still to do
is one whose `embedding_next` is NULL. When every row has one, each index on `embedding` (the
HNSW ones, whichever the migrations made) is built again on the staging column, concurrently,
so writers are not blocked; then one short transaction drops the old column with its indexes,
renames the staging column and its indexes into their place, and records the new embedder.

deskmate_meta's `reindex_target` names the embedder a run is filling for: a run for another one
starts over. Rows the service adds meanwhile arrive without `embedding_next` and are picked up;
a memory whose text changes loses its staged vector (a trigger), so it is embedded again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import numpy as np

from storage import meta
from storage.errors import SchemaMismatch
from storage.meta import EmbeddingSpace

# The tables holding vectors, in the column `embedding`.
TABLES = ("document_chunks", "memories")
_TARGET_KEY = "reindex_target"
_STAGED = "_next"  # suffix of the staging column and of the indexes built on it
# pg_attribute.attstorage → the word ALTER COLUMN … SET STORAGE takes.
_STORAGE = {"p": "PLAIN", "e": "EXTERNAL", "m": "MAIN", "x": "EXTENDED"}

# The indexes of a table that cover a column: (name, definition).
_INDEXES_ON = """
SELECT c.relname AS name, pg_get_indexdef(x.indexrelid) AS definition, x.indisvalid AS valid
FROM pg_index x
JOIN pg_class c ON c.oid = x.indexrelid
JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = ANY (x.indkey::int2[])
WHERE x.indrelid = $1::regclass AND a.attname = $2
ORDER BY c.relname
"""

_FORGET_STALE = """
CREATE OR REPLACE FUNCTION deskmate_reindex_forget_stale() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.embedding_next := NULL;  -- made from the old text: embed the new one
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS memories_reindex_stale ON memories;
CREATE TRIGGER memories_reindex_stale BEFORE UPDATE OF content ON memories
    FOR EACH ROW WHEN (OLD.content IS DISTINCT FROM NEW.content)
    EXECUTE FUNCTION deskmate_reindex_forget_stale();
"""

_DROP_FORGET_STALE = """
DROP TRIGGER IF EXISTS memories_reindex_stale ON memories;
DROP FUNCTION IF EXISTS deskmate_reindex_forget_stale();
"""


@dataclass(frozen=True)
class ChunkText:
    """A chunk to embed, with the parts its embedded text is made of (`passage_text` in
    bot/ingest/pipeline.py)."""

    id: int
    title: str
    section_title: str | None
    content: str


@dataclass(frozen=True)
class MemoryText:
    id: int
    content: str


@dataclass(frozen=True)
class Pending:
    chunks: int
    memories: int

    @property
    def total(self) -> int:
        return self.chunks + self.memories


def _key(space: EmbeddingSpace) -> str:
    return json.dumps([space.provider, space.model, space.dimension])


async def target(conn: asyncpg.Connection) -> EmbeddingSpace | None:
    """The embedder an unfinished run was filling the staging columns for, if any."""
    value = await meta.get_value(conn, _TARGET_KEY)
    if value is None:
        return None
    provider, model, dimension = json.loads(value)
    return EmbeddingSpace(provider, model, int(dimension))


async def begin(conn: asyncpg.Connection, space: EmbeddingSpace) -> bool:
    """Staging columns for `space`: an unfinished run's for the same embedder are kept (True:
    resumed), anything else is replaced by empty ones (False)."""
    async with conn.transaction():
        if await target(conn) == space:
            return True
        for table in TABLES:
            # Adding a nullable column without a default rewrites nothing: instant.
            await conn.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS embedding_next")
            await conn.execute(
                f"ALTER TABLE {table} ADD COLUMN embedding_next vector({int(space.dimension)})"
            )
            storage = await conn.fetchval(
                "SELECT attstorage::text FROM pg_attribute "
                "WHERE attrelid = $1::regclass AND attname = 'embedding'",
                table,
            )
            await conn.execute(
                f"ALTER TABLE {table} ALTER COLUMN embedding_next SET STORAGE {_STORAGE[storage]}"
            )
        await conn.execute(_FORGET_STALE)
        await meta.set_value(conn, _TARGET_KEY, _key(space))
    return False


async def abandon(conn: asyncpg.Connection) -> None:
    """Remove an unfinished run's staging columns, trigger and target."""
    async with conn.transaction():
        for table in TABLES:
            await conn.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS embedding_next")
        await conn.execute(_DROP_FORGET_STALE)
        await conn.execute("DELETE FROM deskmate_meta WHERE key = $1", _TARGET_KEY)


async def pending(conn: asyncpg.Connection) -> Pending:
    """How many chunks and memories still wait for their new vector."""
    row = await conn.fetchrow(
        """
        SELECT (SELECT count(*) FROM document_chunks WHERE embedding_next IS NULL) AS chunks,
               (SELECT count(*) FROM memories WHERE embedding_next IS NULL) AS memories
        """
    )
    return Pending(chunks=row["chunks"], memories=row["memories"])


async def next_chunks(conn: asyncpg.Connection, after_id: int, limit: int) -> list[ChunkText]:
    """Up to `limit` chunks still to do with an id above `after_id`, in id order (of every
    tenant: vectors are one space for the whole database)."""
    rows = await conn.fetch(
        """
        SELECT c.id, d.title, c.section_title, c.content
        FROM document_chunks c JOIN documents d ON d.id = c.document_id
        WHERE c.embedding_next IS NULL AND c.id > $1
        ORDER BY c.id LIMIT $2
        """,
        after_id,
        limit,
    )
    return [ChunkText(r["id"], r["title"], r["section_title"], r["content"]) for r in rows]


async def next_memories(conn: asyncpg.Connection, after_id: int, limit: int) -> list[MemoryText]:
    """Up to `limit` memories still to do (forgotten ones too) with an id above `after_id`."""
    rows = await conn.fetch(
        """
        SELECT id, content FROM memories
        WHERE embedding_next IS NULL AND id > $1
        ORDER BY id LIMIT $2
        """,
        after_id,
        limit,
    )
    return [MemoryText(r["id"], r["content"]) for r in rows]


async def stage_chunks(
    conn: asyncpg.Connection, chunks: Sequence[ChunkText], vectors: Sequence[np.ndarray]
) -> None:
    """Store one batch's new chunk vectors (committed together)."""
    async with conn.transaction():
        await conn.executemany(
            "UPDATE document_chunks SET embedding_next = $2 WHERE id = $1",
            [(c.id, v) for c, v in zip(chunks, vectors, strict=True)],
        )


async def stage_memories(
    conn: asyncpg.Connection, memories: Sequence[MemoryText], vectors: Sequence[np.ndarray]
) -> None:
    """Store one batch's new memory vectors; a memory whose text changed since it was read
    keeps none (the content check), and is embedded again on the next pass."""
    async with conn.transaction():
        await conn.executemany(
            "UPDATE memories SET embedding_next = $3 WHERE id = $1 AND content = $2",
            [(m.id, m.content, v) for m, v in zip(memories, vectors, strict=True)],
        )


async def build_indexes(conn: asyncpg.Connection) -> None:
    """Each index on `embedding` again on the staging column, built without blocking writers.
    One a killed build left invalid is built again; a valid one is kept. (Outside a
    transaction: CREATE INDEX CONCURRENTLY cannot run in one.)"""
    for table in TABLES:
        staged = {
            r["name"]: r["valid"] for r in await conn.fetch(_INDEXES_ON, table, "embedding_next")
        }
        for index in await conn.fetch(_INDEXES_ON, table, "embedding"):
            name = index["name"] + _STAGED
            if staged.get(name) is False:
                await conn.execute(f"DROP INDEX CONCURRENTLY {name}")
            if not staged.get(name):
                await conn.execute(_staged_index(index["definition"], index["name"], name))


def _staged_index(definition: str, name: str, staged: str) -> str:
    """`definition` (pg_get_indexdef's) as the same index on the staging column."""
    head = f" INDEX {name} ON "
    if head not in definition or "(embedding " not in definition:
        raise SchemaMismatch(f"`deskmate reindex` cannot build index {name} again: {definition}")
    concurrent = definition.replace(head, f" INDEX CONCURRENTLY {staged} ON ", 1)
    return concurrent.replace("(embedding ", "(embedding_next ", 1)


async def swap(conn: asyncpg.Connection, space: EmbeddingSpace) -> bool:
    """Put the staging columns in place of the old ones and record `space`, in one transaction.
    False (and nothing changed) when rows arrived without a new vector since the last batch."""
    async with conn.transaction():
        # Both tables at once, in a fixed order: the service waits for a moment, never deadlocks.
        await conn.execute(f"LOCK TABLE {', '.join(TABLES)} IN ACCESS EXCLUSIVE MODE")
        if (await pending(conn)).total:
            return False
        for table in TABLES:
            staged = await conn.fetch(_INDEXES_ON, table, "embedding_next")
            await conn.execute(f"ALTER TABLE {table} DROP COLUMN embedding")  # and its indexes
            await conn.execute(f"ALTER TABLE {table} RENAME COLUMN embedding_next TO embedding")
            await conn.execute(f"ALTER TABLE {table} ALTER COLUMN embedding SET NOT NULL")
            for name in (i["name"] for i in staged if i["name"].endswith(_STAGED)):
                await conn.execute(f"ALTER INDEX {name} RENAME TO {name.removesuffix(_STAGED)}")
        await conn.execute(_DROP_FORGET_STALE)
        await conn.execute("DELETE FROM deskmate_meta WHERE key = $1", _TARGET_KEY)
        await meta.record_space(conn, space)
    return True
