"""deskmate_meta: small facts about the database itself (embedding size, demo seeded)."""

from __future__ import annotations

import asyncpg


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
