"""Channel clearances: which departments' documents may be quoted in a channel."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class Clearance:
    platform: str
    channel_id: str
    department: str
    created_by: str | None


async def add_clearance(
    conn: asyncpg.Connection,
    tenant_id: int,
    clearance: Clearance,
) -> bool:
    """Clear the channel for the department; False when it already was."""
    inserted = await conn.fetchval(
        """
        INSERT INTO channel_clearances (tenant_id, platform, channel_id, department, created_by)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (tenant_id, platform, channel_id, department) DO NOTHING
        RETURNING true
        """,
        tenant_id,
        clearance.platform,
        clearance.channel_id,
        clearance.department,
        clearance.created_by,
    )
    return bool(inserted)


async def remove_clearance(
    conn: asyncpg.Connection, tenant_id: int, platform: str, channel_id: str, department: str
) -> bool:
    """Withdraw a clearance; False when there was none."""
    deleted = await conn.fetchval(
        """
        DELETE FROM channel_clearances
        WHERE tenant_id = $1 AND platform = $2 AND channel_id = $3 AND department = $4
        RETURNING true
        """,
        tenant_id,
        platform,
        channel_id,
        department,
    )
    return bool(deleted)


async def list_clearances(
    conn: asyncpg.Connection, tenant_id: int, platform: str | None = None
) -> list[Clearance]:
    rows = await conn.fetch(
        """
        SELECT platform, channel_id, department, created_by FROM channel_clearances
        WHERE tenant_id = $1 AND ($2::text IS NULL OR platform = $2)
        ORDER BY platform, channel_id, department
        """,
        tenant_id,
        platform,
    )
    return [Clearance(**dict(r)) for r in rows]


async def departments_for_channel(
    conn: asyncpg.Connection, tenant_id: int, platform: str, channel_id: str
) -> list[str]:
    """The departments a channel is cleared for (public departments not included)."""
    rows = await conn.fetch(
        """
        SELECT department FROM channel_clearances
        WHERE tenant_id = $1 AND platform = $2 AND channel_id = $3
        ORDER BY department
        """,
        tenant_id,
        platform,
        channel_id,
    )
    return [r["department"] for r in rows]
