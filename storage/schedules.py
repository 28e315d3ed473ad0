"""Scheduled messages: the schedules admins manage, and turning due slots into runs.

Finishing runs lives in `storage/jobs.py`; this module owns the schedules, the tick's
materialisation (`due_schedules` → `insert_runs` → `advance`) and claiming runs at each
channel's pace (`claim_paced`, `reserve`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg

from storage.jobs import Claim

_COLUMNS = """id, tenant_id, platform, channel, thread, kind, payload, run_at, cron, timezone,
              status, next_run_at, last_error, created_by, created_at, updated_at"""


@dataclass(frozen=True)
class NewSchedule:
    platform: str
    channel: str
    kind: str
    payload: dict[str, Any]
    created_by: str
    run_at: dt.datetime | None = None
    cron: str | None = None
    timezone: str = "UTC"
    next_run_at: dt.datetime | None = None
    thread: str | None = None


@dataclass(frozen=True)
class Schedule:
    id: int
    tenant_id: int
    platform: str
    channel: str
    thread: str | None
    kind: str
    payload: dict[str, Any]
    run_at: dt.datetime | None
    cron: str | None
    timezone: str
    status: str
    next_run_at: dt.datetime | None
    last_error: str | None
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for the audit log."""
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, dt.datetime):
                data[key] = value.isoformat()
        return data


@dataclass(frozen=True)
class ScheduleSummary:
    """A schedule with what its runs did, for `schedule list`."""

    schedule: Schedule
    sent: int
    failed: int
    open: int  # pending or claimed
    last_slot: dt.datetime | None
    last_status: str | None


@dataclass(frozen=True)
class DueSchedule:
    id: int
    tenant_id: int
    run_at: dt.datetime | None
    cron: str | None
    timezone: str
    next_run_at: dt.datetime


@dataclass(frozen=True)
class RunSlot:
    """A run the tick materialises; `next_run_at` is the schedule's following slot."""

    schedule_id: int
    tenant_id: int
    slot: dt.datetime
    next_run_at: dt.datetime | None


def _schedule(row: asyncpg.Record | None) -> Schedule | None:
    return None if row is None else Schedule(**dict(row))


async def db_now(conn: asyncpg.Connection) -> dt.datetime:
    """The database clock: the one every replica agrees on."""
    return await conn.fetchval("SELECT now()")


async def create(conn: asyncpg.Connection, tenant_id: int, new: NewSchedule) -> Schedule:
    row = await conn.fetchrow(
        f"""
        INSERT INTO scheduled_messages (tenant_id, platform, channel, thread, kind, payload,
                                        run_at, cron, timezone, next_run_at, created_by)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
        RETURNING {_COLUMNS}
        """,
        tenant_id, new.platform, new.channel, new.thread, new.kind, new.payload, new.run_at,
        new.cron, new.timezone, new.next_run_at, new.created_by,
    )  # fmt: skip
    schedule = _schedule(row)
    assert schedule is not None
    return schedule


async def get(
    conn: asyncpg.Connection, tenant_id: int, schedule_id: int, *, lock: bool = False
) -> Schedule | None:
    """One schedule of the tenant (deleted ones too); `lock` holds its row for an update."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM scheduled_messages WHERE tenant_id = $1 AND id = $2"
        + (" FOR UPDATE" if lock else ""),
        tenant_id,
        schedule_id,
    )
    return _schedule(row)


async def find_same(conn: asyncpg.Connection, tenant_id: int, new: NewSchedule) -> Schedule | None:
    """A live schedule with the same target, kind, payload and timing (idempotent seeding)."""
    row = await conn.fetchrow(
        f"""
        SELECT {_COLUMNS} FROM scheduled_messages
        WHERE tenant_id = $1 AND platform = $2 AND channel = $3 AND kind = $4 AND payload = $5
          AND cron IS NOT DISTINCT FROM $6 AND run_at IS NOT DISTINCT FROM $7
          AND status <> 'deleted'
        ORDER BY id LIMIT 1
        """,
        tenant_id, new.platform, new.channel, new.kind, new.payload, new.cron, new.run_at,
    )  # fmt: skip
    return _schedule(row)


async def list_summaries(
    conn: asyncpg.Connection, tenant_id: int, *, include_deleted: bool = False
) -> list[ScheduleSummary]:
    rows = await conn.fetch(
        f"""
        SELECT {", ".join(f"m.{c.strip()}" for c in _COLUMNS.split(","))},
               count(r.id) FILTER (WHERE r.status = 'sent') AS sent,
               count(r.id) FILTER (WHERE r.status = 'failed') AS failed,
               count(r.id) FILTER (WHERE r.status IN ('pending', 'claimed')) AS open,
               last.slot AS last_slot, last.status AS last_status
        FROM scheduled_messages m
        LEFT JOIN scheduled_runs r ON r.schedule_id = m.id
        LEFT JOIN LATERAL (
            SELECT slot, status FROM scheduled_runs
            WHERE schedule_id = m.id ORDER BY slot DESC LIMIT 1
        ) last ON true
        WHERE m.tenant_id = $1 AND ($2 OR m.status <> 'deleted')
        GROUP BY m.id, last.slot, last.status
        ORDER BY m.id
        """,
        tenant_id,
        include_deleted,
    )
    summaries = []
    for row in rows:
        data = dict(row)
        counts = {k: data.pop(k) for k in ("sent", "failed", "open", "last_slot", "last_status")}
        summaries.append(ScheduleSummary(Schedule(**data), **counts))
    return summaries


async def set_status(
    conn: asyncpg.Connection,
    tenant_id: int,
    schedule_id: int,
    status: str,
    next_run_at: dt.datetime | None,
) -> Schedule | None:
    """Pause, resume or delete; a status change also clears the last error."""
    row = await conn.fetchrow(
        f"""
        UPDATE scheduled_messages
        SET status = $3, next_run_at = $4, last_error = NULL, updated_at = now()
        WHERE tenant_id = $1 AND id = $2
        RETURNING {_COLUMNS}
        """,
        tenant_id,
        schedule_id,
        status,
        next_run_at,
    )
    return _schedule(row)


async def drop_pending_runs(conn: asyncpg.Connection, schedule_id: int) -> int:
    """Forget runs nobody has started (a paused or deleted schedule sends nothing more);
    claimed runs are already being delivered and are left to finish."""
    result = await conn.execute(
        "DELETE FROM scheduled_runs WHERE schedule_id = $1 AND status = 'pending' AND NOT manual",
        schedule_id,
    )
    return int(result.split()[-1])


async def due_schedules(conn: asyncpg.Connection, limit: int) -> list[DueSchedule]:
    """Active schedules whose next slot has come, locked for this transaction.

    SKIP LOCKED: replicas ticking at the same moment split the due schedules between them
    instead of queueing on each other's rows."""
    rows = await conn.fetch(
        """
        SELECT id, tenant_id, run_at, cron, timezone, next_run_at FROM scheduled_messages
        WHERE status = 'active' AND next_run_at <= now()
        ORDER BY next_run_at, id
        LIMIT $1
        FOR UPDATE SKIP LOCKED
        """,
        limit,
    )
    return [DueSchedule(**dict(r)) for r in rows]


async def insert_runs(conn: asyncpg.Connection, slots: list[RunSlot]) -> int:
    """Materialise runs and move each schedule to its next slot; returns the runs created.

    ON CONFLICT DO NOTHING: a slot that already has its run (another replica, an earlier tick
    that crashed before advancing the schedule) keeps the one it has."""
    if not slots:
        return 0
    created = await conn.fetchval(
        """
        WITH new AS (
            INSERT INTO scheduled_runs (tenant_id, schedule_id, slot)
            SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[])
            ON CONFLICT (schedule_id, slot) DO NOTHING
            RETURNING 1
        )
        SELECT count(*) FROM new
        """,
        [s.tenant_id for s in slots],
        [s.schedule_id for s in slots],
        [s.slot for s in slots],
    )
    await conn.execute(
        """
        UPDATE scheduled_messages m SET next_run_at = n.next_run_at, updated_at = now()
        FROM unnest($1::bigint[], $2::timestamptz[]) AS n (id, next_run_at)
        WHERE m.id = n.id
        """,
        [s.schedule_id for s in slots],
        [s.next_run_at for s in slots],
    )
    return int(created)


async def fail_schedules(conn: asyncpg.Connection, failures: list[tuple[int, str]]) -> None:
    """Stop schedules that cannot run, with the reason (one bad row must not block a tick)."""
    if failures:
        await conn.executemany(
            """
            UPDATE scheduled_messages SET status = 'failed', last_error = $2, updated_at = now()
            WHERE id = $1
            """,
            failures,
        )


async def department_exists(conn: asyncpg.Connection, tenant_id: int, department: str) -> bool:
    """Whether anything of the tenant belongs to the department: a document (as its owner or
    a reader), a person (as a reader or its head), or a channel cleared for it."""
    return await conn.fetchval(
        """
        SELECT EXISTS (SELECT 1 FROM documents
                       WHERE tenant_id = $1 AND is_active
                         AND (department = $2 OR $2 = ANY (department_access)))
            OR EXISTS (SELECT 1 FROM users
                       WHERE tenant_id = $1
                         AND ($2 = ANY (department_access) OR $2 = ANY (dept_head_for)))
            OR EXISTS (SELECT 1 FROM channel_clearances
                       WHERE tenant_id = $1 AND department = $2)
        """,
        tenant_id, department,
    )  # fmt: skip


@dataclass(frozen=True)
class WaitingRun:
    """A run due for delivery that no replica here can post: its platform is off."""

    id: int
    schedule_id: int
    platform: str
    channel: str
    slot: dt.datetime


async def runs_waiting_for(
    conn: asyncpg.Connection, platforms: list[str], waited_seconds: float, limit: int
) -> list[WaitingRun]:
    """Runs for any of `platforms` that have been due (pending, past their backoff, of an
    active schedule or `run-now`) for at least `waited_seconds`, longest waiting first."""
    rows = await conn.fetch(
        """
        SELECT r.id, r.schedule_id, s.platform, s.channel, r.slot
        FROM scheduled_runs r JOIN scheduled_messages s ON s.id = r.schedule_id
        WHERE r.status = 'pending' AND r.available_at <= now() - make_interval(secs => $2)
          AND s.platform = ANY ($1::text[]) AND (s.status = 'active' OR r.manual)
        ORDER BY r.available_at, r.id
        LIMIT $3
        """,
        platforms, waited_seconds, limit,
    )  # fmt: skip
    return [WaitingRun(**dict(r)) for r in rows]


# --- claiming runs at each channel's pace -------------------------------------------------------

# Every reservation leaves this much room for the post to leave the process after its claim
# (or reservation) returns: a post later than that reserves its channel again (`reserve`).
POST_WINDOW_SECONDS = 0.05


@dataclass(frozen=True)
class PacedClaim:
    """A claimed run and the moment its channel's reservation ends (None: an unpaced
    platform), which `reserve` recognises as this run's own."""

    claim: Claim
    paced_until: dt.datetime | None


async def claim_paced(
    conn: asyncpg.Connection,
    replica: str,
    pacing: dict[str, float],
    limit: int,
    lease: float,
) -> list[PacedClaim]:
    """Take up to `limit` due runs of the platforms in `pacing` (platform → seconds between
    posts to one channel), at most one per channel whose next allowed moment has come.

    One statement: the oldest due run of each open channel is locked (SKIP LOCKED, as in
    `storage.jobs.claim`), each paced channel's next allowed moment is moved forward unless
    another replica moved it first (the upsert waits for that replica's row and checks again),
    and only runs whose channel this statement reserved are claimed. A platform paced at 0
    seconds (the web chat) takes every due run. Channels are reserved in key order, so two
    replicas claiming at once never wait on each other in a circle."""
    platforms = list(pacing)
    rows = await conn.fetch(
        f"""
        WITH pace AS (
            SELECT * FROM unnest($2::text[], $5::float8[]) AS p (platform, seconds)
        ), heads AS (
            SELECT DISTINCT ON (r.tenant_id, s.platform, s.channel,
                                CASE WHEN p.seconds > 0 THEN 0 ELSE r.id END)
                   r.id, r.available_at, r.tenant_id, s.platform, s.channel, p.seconds
            FROM scheduled_runs r
            JOIN scheduled_messages s ON s.id = r.schedule_id
            JOIN pace p ON p.platform = s.platform
            WHERE r.status IN ('pending', 'claimed') AND r.available_at <= now()
              AND (s.status = 'active' OR r.manual)
              AND NOT EXISTS (
                  SELECT 1 FROM channel_pacing c
                  WHERE c.tenant_id = r.tenant_id AND c.platform = s.platform
                    AND c.channel = s.channel AND c.next_allowed_at > clock_timestamp())
            ORDER BY r.tenant_id, s.platform, s.channel,
                     CASE WHEN p.seconds > 0 THEN 0 ELSE r.id END, r.available_at, r.id
        ), picked AS (
            SELECT * FROM heads ORDER BY available_at, id LIMIT $3
        ), locked AS (
            SELECT r.id FROM scheduled_runs r
            WHERE r.id IN (SELECT id FROM picked)
              AND r.status IN ('pending', 'claimed') AND r.available_at <= now()
            FOR UPDATE OF r SKIP LOCKED
        ), reserved AS (
            INSERT INTO channel_pacing AS c (tenant_id, platform, channel, next_allowed_at)
            SELECT p.tenant_id, p.platform, p.channel,
                   clock_timestamp() + make_interval(secs => p.seconds + {POST_WINDOW_SECONDS})
            FROM picked p JOIN locked USING (id)
            WHERE p.seconds > 0
            ORDER BY p.tenant_id, p.platform, p.channel
            ON CONFLICT (tenant_id, platform, channel) DO UPDATE
                SET next_allowed_at = EXCLUDED.next_allowed_at
                WHERE c.next_allowed_at <= clock_timestamp()
            RETURNING c.tenant_id, c.platform, c.channel, c.next_allowed_at
        ), taken AS (
            SELECT p.id, g.next_allowed_at AS paced_until
            FROM picked p JOIN locked USING (id)
            LEFT JOIN reserved g ON g.tenant_id = p.tenant_id AND g.platform = p.platform
                                AND g.channel = p.channel
            WHERE p.seconds <= 0 OR g.channel IS NOT NULL
        )
        UPDATE scheduled_runs r
        SET status = 'claimed', claimed_by = $1, attempts = r.attempts + 1,
            lease_until = now() + make_interval(secs => $4),
            available_at = now() + make_interval(secs => $4), updated_at = now()
        FROM taken, scheduled_messages s, tenants t
        WHERE r.id = taken.id AND s.id = r.schedule_id AND t.id = r.tenant_id
        RETURNING r.id, r.tenant_id, t.slug AS tenant, r.schedule_id, r.slot, r.attempts,
                  r.manual, r.content, s.platform, s.channel, s.thread, s.kind, s.payload,
                  s.timezone, s.cron, s.created_by, r.claimed_by, taken.paced_until
        """,
        replica, platforms, limit, lease, [pacing[p] for p in platforms],
    )  # fmt: skip
    claims = []
    for row in rows:
        data = dict(row)
        paced_until = data.pop("paced_until")
        claims.append(PacedClaim(Claim(**data), paced_until))
    return claims


async def reserve(conn: asyncpg.Connection, claim: PacedClaim, seconds: float) -> float:
    """Reserve the claim's channel for a post now, when the post could not leave right after
    its claim (a prompt was answered first, say); returns how long to wait before posting.

    Still the channel's latest reservation (no other post was claimed since): the post may go
    at once. Otherwise it goes once the latest reservation ends."""
    c = claim.claim
    wait = await conn.fetchval(
        """
        INSERT INTO channel_pacing AS p (tenant_id, platform, channel, next_allowed_at)
        VALUES ($1, $2, $3, clock_timestamp() + make_interval(secs => $5))
        ON CONFLICT (tenant_id, platform, channel) DO UPDATE
        SET next_allowed_at = make_interval(secs => $5) + CASE
            WHEN p.next_allowed_at = $4 THEN clock_timestamp()
            ELSE greatest(p.next_allowed_at, clock_timestamp()) END
        RETURNING extract(epoch FROM p.next_allowed_at - clock_timestamp())::float8 - $5
        """,
        c.tenant_id, c.platform, c.channel, claim.paced_until,
        seconds + POST_WINDOW_SECONDS,
    )  # fmt: skip
    return max(0.0, float(wait or 0.0))


async def next_claimable_in(conn: asyncpg.Connection, platforms: list[str]) -> float | None:
    """Seconds until the next open run of `platforms` may be claimed (its backoff, lease or
    channel's pace permitting); None when no run is open."""
    wait = await conn.fetchval(
        """
        SELECT extract(epoch FROM min(greatest(r.available_at, c.next_allowed_at))
                                  - clock_timestamp())::float8
        FROM scheduled_runs r
        JOIN scheduled_messages s ON s.id = r.schedule_id
        LEFT JOIN channel_pacing c ON c.tenant_id = r.tenant_id AND c.platform = s.platform
                                  AND c.channel = s.channel
        WHERE r.status IN ('pending', 'claimed') AND s.platform = ANY($1::text[])
          AND (s.status = 'active' OR r.manual)
        """,
        platforms,
    )
    return None if wait is None else max(0.0, wait)
