"""Platform deliveries seen (processed_events): an accepted event is answered once.

An event is claimed by inserting its row, payload included, before the platform hears "accepted".
A delivery whose row exists is skipped, unless the earlier attempt failed or stopped reporting
progress (its process crashed mid-answer): then the retry takes it over. Platforms do not retry
what they saw accepted, so the sweeper (`take_abandoned`) resumes such events from their payload.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg

# A claim not renewed for this long is taken to belong to a dead process.
STALE_AFTER_SECONDS = 120


@dataclass(frozen=True)
class Abandoned:
    """An accepted event whose answer never finished, taken over to be answered again."""

    platform: str
    event_id: str
    payload: dict[str, Any]
    attempts: int


async def claim(
    conn: asyncpg.Connection,
    platform: str,
    event_id: str,
    tenant_id: int,
    *,
    payload: dict[str, Any] | None = None,
    stale_after: float = STALE_AFTER_SECONDS,
) -> bool:
    """True when this caller should process the event (first delivery, or a takeover)."""
    claimed = await conn.fetchval(
        """
        INSERT INTO processed_events (platform, event_id, tenant_id, payload)
        VALUES ($1, $2, $3, $5)
        ON CONFLICT (platform, event_id) DO UPDATE
            SET status = 'processing', attempts = processed_events.attempts + 1,
                updated_at = now(),
                payload = coalesce(EXCLUDED.payload, processed_events.payload)
            WHERE processed_events.status = 'failed'
               OR (processed_events.status = 'processing'
                   AND processed_events.updated_at < now() - make_interval(secs => $4))
        RETURNING true
        """,
        platform,
        event_id,
        tenant_id,
        stale_after,
        payload,
    )
    return bool(claimed)


@dataclass(frozen=True)
class NewClaim:
    """A delivery to claim: its key, its organisation and what is needed to answer it."""

    platform: str
    event_id: str
    tenant_id: int
    payload: dict[str, Any] | None = None


async def claim_many(
    conn: asyncpg.Connection,
    claims: list[NewClaim],
    *,
    stale_after: float = STALE_AFTER_SECONDS,
) -> set[tuple[str, str]]:
    """Claim several deliveries in one statement (one commit for all); the (platform, event_id)
    pairs this caller now owns. A key given twice is claimed once."""
    rows = await conn.fetch(
        """
        INSERT INTO processed_events AS e (platform, event_id, tenant_id, payload)
        SELECT DISTINCT ON (platform, event_id) platform, event_id, tenant_id, payload::jsonb
        FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[])
             AS incoming (platform, event_id, tenant_id, payload)
        ON CONFLICT (platform, event_id) DO UPDATE
            SET status = 'processing', attempts = e.attempts + 1, updated_at = now(),
                payload = coalesce(EXCLUDED.payload, e.payload)
            WHERE e.status = 'failed'
               OR (e.status = 'processing'
                   AND e.updated_at < now() - make_interval(secs => $5))
        RETURNING e.platform, e.event_id
        """,
        [c.platform for c in claims],
        [c.event_id for c in claims],
        [c.tenant_id for c in claims],
        [None if c.payload is None else json.dumps(c.payload) for c in claims],
        stale_after,
    )
    return {(r["platform"], r["event_id"]) for r in rows}


async def renew(conn: asyncpg.Connection, claims: list[tuple[str, str]]) -> None:
    """The claims' owner is still working on them (or has them queued): push their leases
    forward. `claims` are (platform, event_id) pairs."""
    await conn.execute(
        """
        UPDATE processed_events AS e SET updated_at = now()
        FROM unnest($1::text[], $2::text[]) AS held (platform, event_id)
        WHERE e.platform = held.platform AND e.event_id = held.event_id
          AND e.status = 'processing'
        """,
        [platform for platform, _ in claims],
        [event_id for _, event_id in claims],
    )


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


async def take_abandoned(
    conn: asyncpg.Connection,
    *,
    platforms: list[str],
    max_attempts: int,
    retry_failed_after: float,
    limit: int,
    stale_after: float = STALE_AFTER_SECONDS,
) -> list[Abandoned]:
    """Claim, for this caller, unfinished events of `platforms` that nobody is working on: a
    lease run out, or a failure older than `retry_failed_after` seconds, with attempts left.
    Rows another replica is taking at the same moment are skipped, not waited for."""
    rows = await conn.fetch(
        """
        WITH due AS (
            SELECT platform, event_id FROM processed_events
            WHERE status <> 'done' AND payload IS NOT NULL
              AND platform = ANY($1::text[]) AND attempts < $2
              AND ((status = 'processing'
                    AND updated_at < now() - make_interval(secs => $3))
                   OR (status = 'failed'
                       AND updated_at < now() - make_interval(secs => $4)))
            ORDER BY updated_at
            LIMIT $5
            FOR UPDATE SKIP LOCKED
        )
        UPDATE processed_events AS e
        SET status = 'processing', attempts = e.attempts + 1, updated_at = now()
        FROM due
        WHERE e.platform = due.platform AND e.event_id = due.event_id
        RETURNING e.platform, e.event_id, e.payload, e.attempts
        """,
        platforms,
        max_attempts,
        stale_after,
        retry_failed_after,
        limit,
    )
    return [Abandoned(r["platform"], r["event_id"], r["payload"], r["attempts"]) for r in rows]


async def unfinished(conn: asyncpg.Connection) -> dict[str, int]:
    """How many accepted events are not done yet, by status (for tests and the fault report)."""
    rows = await conn.fetch(
        "SELECT status, count(*) AS n FROM processed_events WHERE status <> 'done' GROUP BY 1"
    )
    return {r["status"]: r["n"] for r in rows}
