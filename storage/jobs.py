"""Background work in the database: delivery runs (claim → sent | retry | failed) and job_runs.

A claimed run is fenced by (claimed_by, attempts): every statement that finishes a claim names
both, so a replica whose lease expired and was taken over changes nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import asyncpg

_RUN_COLUMNS = """r.id, r.schedule_id, r.slot, r.status, r.attempts, r.manual, r.claimed_by,
                  r.lease_until, r.platform_message_id, r.error, r.sent_at, r.failed_at"""


@dataclass(frozen=True)
class Claim:
    """A run this replica holds, with what delivering it needs."""

    id: int
    tenant_id: int
    tenant: str  # the tenant's slug (Target.tenant)
    schedule_id: int
    slot: dt.datetime
    attempts: int  # this claim's attempt number: the fencing token
    manual: bool
    content: dict[str, Any] | None
    platform: str
    channel: str
    thread: str | None
    kind: str
    payload: dict[str, Any]
    timezone: str
    cron: str | None
    created_by: str
    claimed_by: str


@dataclass(frozen=True)
class Run:
    id: int
    schedule_id: int
    slot: dt.datetime
    status: str
    attempts: int
    manual: bool
    claimed_by: str | None
    lease_until: dt.datetime | None
    platform_message_id: str | None
    error: str | None
    sent_at: dt.datetime | None
    failed_at: dt.datetime | None


async def claim(
    conn: asyncpg.Connection, replica: str, platforms: list[str], limit: int, lease: float
) -> list[Claim]:
    """Take up to `limit` due runs for the platforms this replica can post to.

    Due means pending and past its backoff, or claimed by someone whose lease has expired
    (they died or hung: the run is retried). FOR UPDATE SKIP LOCKED lets replicas claim side
    by side without waiting on, or double-taking, each other's rows; the lease comes from the
    database clock, so replicas' clocks need not agree. A paused schedule's runs wait, except
    `run-now` ones."""
    rows = await conn.fetch(
        """
        WITH due AS (
            SELECT r.id FROM scheduled_runs r
            JOIN scheduled_messages s ON s.id = r.schedule_id
            WHERE r.status IN ('pending', 'claimed') AND r.available_at <= now()
              AND s.platform = ANY($2::text[]) AND (s.status = 'active' OR r.manual)
            ORDER BY r.available_at, r.id
            LIMIT $3
            FOR UPDATE OF r SKIP LOCKED
        )
        UPDATE scheduled_runs r
        SET status = 'claimed', claimed_by = $1, attempts = r.attempts + 1,
            lease_until = now() + make_interval(secs => $4),
            available_at = now() + make_interval(secs => $4), updated_at = now()
        FROM due, scheduled_messages s, tenants t
        WHERE r.id = due.id AND s.id = r.schedule_id AND t.id = r.tenant_id
        RETURNING r.id, r.tenant_id, t.slug AS tenant, r.schedule_id, r.slot, r.attempts,
                  r.manual, r.content, s.platform, s.channel, s.thread, s.kind, s.payload,
                  s.timezone, s.cron, s.created_by, r.claimed_by
        """,
        replica,
        platforms,
        limit,
        lease,
    )
    return [Claim(**dict(r)) for r in rows]


_FENCE = "id = $1 AND status = 'claimed' AND claimed_by = $2 AND attempts = $3"


async def renew(conn: asyncpg.Connection, c: Claim, lease: float) -> bool:
    """Extend the lease before a slow step; False when the run is no longer ours."""
    result = await conn.execute(
        f"""
        UPDATE scheduled_runs SET lease_until = now() + make_interval(secs => $4),
               available_at = now() + make_interval(secs => $4), updated_at = now()
        WHERE {_FENCE}
        """,
        c.id, c.claimed_by, c.attempts, lease,
    )  # fmt: skip
    return result.endswith(" 1")


async def save_content(conn: asyncpg.Connection, c: Claim, content: dict[str, Any]) -> bool:
    """Keep the message as built, so a retry posts exactly the same one."""
    result = await conn.execute(
        f"UPDATE scheduled_runs SET content = $4, updated_at = now() WHERE {_FENCE}",
        c.id, c.claimed_by, c.attempts, content,
    )  # fmt: skip
    return result.endswith(" 1")


async def mark_sent(conn: asyncpg.Connection, c: Claim, message_id: str) -> bool:
    """Record the platform's message id and mark the run sent, in one statement (never one
    without the other); a one-off schedule is then complete. False when no longer ours."""
    async with conn.transaction():
        result = await conn.execute(
            f"""
            UPDATE scheduled_runs
            SET status = 'sent', platform_message_id = $4, sent_at = now(), error = NULL,
                lease_until = NULL, updated_at = now()
            WHERE {_FENCE}
            """,
            c.id, c.claimed_by, c.attempts, message_id,
        )  # fmt: skip
        if not result.endswith(" 1"):
            return False
        if c.cron is None and not c.manual:
            await conn.execute(
                """
                UPDATE scheduled_messages SET status = 'completed', last_error = NULL,
                       updated_at = now()
                WHERE id = $1 AND status IN ('active', 'paused')
                """,
                c.schedule_id,
            )
    return True


async def retry_later(conn: asyncpg.Connection, c: Claim, error: str, delay: float) -> bool:
    """Give the run back, claimable again after `delay` seconds (backoff)."""
    result = await conn.execute(
        f"""
        UPDATE scheduled_runs
        SET status = 'pending', error = $4, lease_until = NULL,
            available_at = now() + make_interval(secs => $5), updated_at = now()
        WHERE {_FENCE}
        """,
        c.id, c.claimed_by, c.attempts, error, delay,
    )  # fmt: skip
    return result.endswith(" 1")


async def mark_failed(conn: asyncpg.Connection, c: Claim, error: str, *, permanent: bool) -> bool:
    """The run is given up with its reason. A one-off schedule fails with it; so does a
    recurring one when the failure is permanent (e.g. the channel is gone), so it stops
    failing every slot until someone resumes it."""
    async with conn.transaction():
        result = await conn.execute(
            f"""
            UPDATE scheduled_runs
            SET status = 'failed', error = $4, failed_at = now(), lease_until = NULL,
                updated_at = now()
            WHERE {_FENCE}
            """,
            c.id, c.claimed_by, c.attempts, error,
        )  # fmt: skip
        if not result.endswith(" 1"):
            return False
        if (c.cron is None and not c.manual) or permanent:
            await conn.execute(
                """
                UPDATE scheduled_messages SET status = 'failed', last_error = $2,
                       updated_at = now()
                WHERE id = $1 AND status IN ('active', 'paused')
                """,
                c.schedule_id,
                error,
            )
    return True


async def release(conn: asyncpg.Connection, c: Claim) -> bool:
    """Hand back a claim that never reached the platform (shutdown): claimable at once, and
    the attempt does not count."""
    result = await conn.execute(
        f"""
        UPDATE scheduled_runs
        SET status = 'pending', attempts = attempts - 1, lease_until = NULL,
            available_at = now(), updated_at = now()
        WHERE {_FENCE}
        """,
        c.id, c.claimed_by, c.attempts,
    )  # fmt: skip
    return result.endswith(" 1")


async def add_manual_run(conn: asyncpg.Connection, tenant_id: int, schedule_id: int) -> Run:
    """A `run-now` run of the schedule, due at once (its slot is the database's now)."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO scheduled_runs AS r (tenant_id, schedule_id, slot, manual)
        VALUES ($1, $2, clock_timestamp(), true)
        RETURNING {_RUN_COLUMNS}
        """,
        tenant_id,
        schedule_id,
    )
    return Run(**dict(row))


async def previous_sent_slot(
    conn: asyncpg.Connection, schedule_id: int, before: dt.datetime
) -> dt.datetime | None:
    """The slot of the schedule's last delivered run before `before` (a digest's period start)."""
    return await conn.fetchval(
        """
        SELECT max(slot) FROM scheduled_runs
        WHERE schedule_id = $1 AND status = 'sent' AND slot < $2
        """,
        schedule_id,
        before,
    )


async def runs_of(
    conn: asyncpg.Connection, tenant_id: int, schedule_id: int, limit: int = 20
) -> list[Run]:
    """The schedule's latest runs, newest slot first."""
    rows = await conn.fetch(
        f"""
        SELECT {_RUN_COLUMNS} FROM scheduled_runs r
        WHERE r.tenant_id = $1 AND r.schedule_id = $2
        ORDER BY r.slot DESC LIMIT $3
        """,
        tenant_id,
        schedule_id,
        limit,
    )
    return [Run(**dict(r)) for r in rows]


async def delivery_failures(conn: asyncpg.Connection, tenant_id: int, since: dt.datetime) -> int:
    """Runs that ended `failed` since `since`: the `delivery_failures` alert metric."""
    return await conn.fetchval(
        """
        SELECT count(*) FROM scheduled_runs
        WHERE tenant_id = $1 AND status = 'failed' AND failed_at >= $2
        """,
        tenant_id,
        since,
    )


# --- job_runs ----------------------------------------------------------------------------------


async def record_job(
    conn: asyncpg.Connection,
    *,
    job: str,
    replica: str,
    status: str,
    seconds: float,
    details: dict[str, Any],
    error: str | None = None,
    tenant_id: int | None = None,
) -> int:
    """One finished execution of a background job (it started `seconds` ago)."""
    return await conn.fetchval(
        """
        INSERT INTO job_runs (tenant_id, job, replica, status, error, details, started_at,
                              finished_at)
        VALUES ($1, $2, $3, $4, $5, $6, now() - make_interval(secs => $7), now())
        RETURNING id
        """,
        tenant_id, job, replica, status, error, details, seconds,
    )  # fmt: skip
