"""Platform deliveries seen (processed_events): a retried event is answered once.

An event is claimed by inserting its row. A delivery whose row exists is skipped, unless the
earlier attempt failed or stopped reporting progress (its process crashed mid-answer): then the
retry takes it over.
"""

from __future__ import annotations

import asyncpg

# A claim older than this without being finished is taken to belong to a dead process.
STALE_AFTER_SECONDS = 120


async def claim(
    conn: asyncpg.Connection,
    platform: str,
    event_id: str,
    tenant_id: int,
    *,
    stale_after: float = STALE_AFTER_SECONDS,
) -> bool:
    """True when this caller should process the event (first delivery, or a takeover)."""
    claimed = await conn.fetchval(
        """
        INSERT INTO processed_events (platform, event_id, tenant_id)
        VALUES ($1, $2, $3)
        ON CONFLICT (platform, event_id) DO UPDATE
            SET status = 'processing', attempts = processed_events.attempts + 1,
                updated_at = now()
            WHERE processed_events.status = 'failed'
               OR (processed_events.status = 'processing'
                   AND processed_events.updated_at < now() - make_interval(secs => $4))
        RETURNING true
        """,
        platform,
        event_id,
        tenant_id,
        stale_after,
    )
    return bool(claimed)


async def finish(conn: asyncpg.Connection, platform: str, event_id: str, *, ok: bool) -> None:
    """Record how processing ended: `done` is never processed again, `failed` may be retried."""
    await conn.execute(
        """
        UPDATE processed_events SET status = $3, updated_at = now()
        WHERE platform = $1 AND event_id = $2
        """,
        platform,
        event_id,
        "done" if ok else "failed",
    )
