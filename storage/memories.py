"""Long-term memories: durable facts about one user, found by meaning."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import numpy as np

_COLUMNS = "id, user_id, content, importance, source_type, tags, created_at, updated_at"


@dataclass(frozen=True)
class Memory:
    id: int
    user_id: int
    content: str
    importance: float
    source_type: str
    tags: tuple[str, ...]
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True)
class ScoredMemory:
    memory: Memory
    similarity: float
    relevance: float


@dataclass(frozen=True)
class NewMemory:
    content: str
    embedding: np.ndarray
    importance: float = 0.5
    source_type: str = "explicit"
    tags: list[str] = field(default_factory=list)
    entities: list[Any] = field(default_factory=list)
    source_ref: dict[str, Any] = field(default_factory=dict)


def _memory(row: asyncpg.Record) -> Memory:
    data = {k: row[k] for k in Memory.__dataclass_fields__}
    data["tags"] = tuple(data["tags"])
    return Memory(**data)


async def add(conn: asyncpg.Connection, tenant_id: int, user_id: int, new: NewMemory) -> Memory:
    row = await conn.fetchrow(
        f"""
        INSERT INTO memories (tenant_id, user_id, content, embedding, importance, source_type,
                              tags, entities, source_ref)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        RETURNING {_COLUMNS}
        """,
        tenant_id, user_id, new.content, new.embedding, new.importance, new.source_type,
        new.tags, new.entities, new.source_ref,
    )  # fmt: skip
    return _memory(row)


async def update(
    conn: asyncpg.Connection, tenant_id: int, user_id: int, memory_id: int, new: NewMemory
) -> Memory | None:
    """Replace a memory's content (a fact that changed); None when it is not the user's."""
    row = await conn.fetchrow(
        f"""
        UPDATE memories
        SET content = $4, embedding = $5, importance = $6, tags = $7, entities = $8,
            source_ref = source_ref || $9, updated_at = now()
        WHERE tenant_id = $1 AND user_id = $2 AND id = $3 AND is_active
        RETURNING {_COLUMNS}
        """,
        tenant_id, user_id, memory_id, new.content, new.embedding, new.importance, new.tags,
        new.entities, new.source_ref,
    )  # fmt: skip
    return _memory(row) if row else None


async def deactivate(
    conn: asyncpg.Connection, tenant_id: int, user_id: int, memory_ids: list[int]
) -> list[Memory]:
    """Forget memories (kept for audit, never retrieved again); returns those forgotten."""
    rows = await conn.fetch(
        f"""
        UPDATE memories SET is_active = false, updated_at = now()
        WHERE tenant_id = $1 AND user_id = $2 AND id = ANY($3::bigint[]) AND is_active
        RETURNING {_COLUMNS}
        """,
        tenant_id,
        user_id,
        memory_ids,
    )
    return [_memory(r) for r in rows]


async def list_active(
    conn: asyncpg.Connection, tenant_id: int, user_id: int, limit: int = 50
) -> list[Memory]:
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM memories
        WHERE tenant_id = $1 AND user_id = $2 AND is_active
        ORDER BY updated_at DESC, id DESC LIMIT $3
        """,
        tenant_id,
        user_id,
        limit,
    )
    return [_memory(r) for r in rows]


async def matching_text(
    conn: asyncpg.Connection, tenant_id: int, user_id: int, text: str
) -> list[Memory]:
    """Active memories whose content contains `text` (case-insensitive), for "forget …"."""
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM memories
        WHERE tenant_id = $1 AND user_id = $2 AND is_active
          AND strpos(lower(content), lower($3)) > 0
        ORDER BY id
        """,
        tenant_id,
        user_id,
        text,
    )
    return [_memory(r) for r in rows]


async def closest(
    conn: asyncpg.Connection, tenant_id: int, user_id: int, embedding: np.ndarray, limit: int
) -> list[ScoredMemory]:
    """The user's active memories nearest in meaning, nearest first (no access bump)."""
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS}, 1 - (embedding <=> $3) AS similarity
        FROM memories
        WHERE tenant_id = $1 AND user_id = $2 AND is_active
        ORDER BY embedding <=> $3 LIMIT $4
        """,
        tenant_id,
        user_id,
        embedding,
        limit,
    )
    return [ScoredMemory(_memory(r), float(r["similarity"]), float(r["similarity"])) for r in rows]


async def every_memory(
    conn: asyncpg.Connection, tenant_id: int, user_id: int
) -> list[tuple[Memory, bool]]:
    """All of a person's memories, forgotten ones too (kept for audit), oldest first, each
    with whether it is still active: what an export of their data holds."""
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS}, is_active FROM memories
        WHERE tenant_id = $1 AND user_id = $2 ORDER BY id
        """,
        tenant_id,
        user_id,
    )
    return [(_memory(r), bool(r["is_active"])) for r in rows]


async def erase_all(conn: asyncpg.Connection, tenant_id: int, user_id: int) -> int:
    """Delete every memory of a person, forgotten ones too; how many there were."""
    return await conn.fetchval(
        """
        WITH gone AS (DELETE FROM memories WHERE tenant_id = $1 AND user_id = $2 RETURNING 1)
        SELECT count(*) FROM gone
        """,
        tenant_id,
        user_id,
    )
