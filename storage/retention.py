"""Retention: what the high-volume tables no longer need is deleted, a batch at a time.

Each batch is one short DELETE of at most `batch_size` rows found through an index, in its own
transaction: it takes row locks on the rows it deletes and the table's ordinary ROW EXCLUSIVE
lock, so reads and writes of the table go on meanwhile, and vacuum reclaims the space as it
goes. Never deleted: a scheduled run still pending or claimed, the latest delivered run of a
live schedule (a digest's period starts there), a platform event not `done` while its lease
may still run, and anything younger than its retention. A retention of 0 days keeps all.

`claim` gives each (job, slot) to the first replica that asks, so the daily pass runs once
across replicas.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

import asyncpg

from storage.database import Database

# A breath between batches, so a large first pass does not keep the server busy back to back.
PAUSE_SECONDS = 0.01

# $1 the retention in days, $2 the batch size. Every statement names the rows of one batch by
# key through an index on its time column and deletes only those.
_RUNS = """
    DELETE FROM scheduled_runs WHERE id IN (
        SELECT r.id FROM scheduled_runs r JOIN scheduled_messages s ON s.id = r.schedule_id
        WHERE r.status IN ('sent', 'failed') AND r.slot < now() - make_interval(days => $1)
          AND NOT (r.status = 'sent' AND s.status IN ('active', 'paused')
                   AND NOT EXISTS (SELECT 1 FROM scheduled_runs later
                                   WHERE later.schedule_id = r.schedule_id
                                     AND later.status = 'sent' AND later.slot > r.slot))
        LIMIT $2)
"""
_TEAMS_DELIVERIES = """
    DELETE FROM teams_deliveries WHERE id IN (
        SELECT id FROM teams_deliveries WHERE created_at < now() - make_interval(days => $1)
        LIMIT $2)
"""
_EVALUATIONS = """
    DELETE FROM alert_evaluations WHERE id IN (
        SELECT id FROM alert_evaluations WHERE slot < now() - make_interval(days => $1)
        LIMIT $2)
"""
# $3 the events' lease in seconds: an unfinished event is kept while a replica may still be
# answering it, however old it is.
_EVENTS = """
    DELETE FROM processed_events WHERE (platform, event_id) IN (
        SELECT platform, event_id FROM processed_events
        WHERE received_at < now() - make_interval(days => $1)
          AND (status = 'done'
               OR updated_at < least(now() - make_interval(days => $1),
                                     now() - make_interval(secs => $3)))
        LIMIT $2)
"""
_JOB_RUNS = """
    DELETE FROM job_runs WHERE id IN (
        SELECT id FROM job_runs WHERE started_at < now() - make_interval(days => $1)
        LIMIT $2)
"""
_JOB_CLAIMS = """
    DELETE FROM job_claims WHERE (job, slot) IN (
        SELECT job, slot FROM job_claims WHERE slot < now() - make_interval(days => $1)
        LIMIT $2)
"""


def _measurements(table: str) -> str:
    # Through the (tenant_id, created_at) index: every tenant's range of old rows.
    return f"""
        DELETE FROM {table} WHERE id IN (
            SELECT id FROM {table}
            WHERE tenant_id = ANY (ARRAY(SELECT id FROM tenants))
              AND created_at < now() - make_interval(days => $1)
            LIMIT $2)
    """


@dataclass(frozen=True)
class Policy:
    """Days each kind of row is kept (0: forever), and how many rows one statement deletes."""

    runs_days: int = 90
    evaluations_days: int = 90
    events_days: int = 90
    job_runs_days: int = 90
    measurements_days: int = 400
    event_lease_seconds: float = 120.0
    batch_size: int = 5000


def _plan(policy: Policy) -> list[tuple[str, str, int]]:
    """(table, statement, days) in the order they run: a query's measurements before it."""
    return [
        ("scheduled_runs", _RUNS, policy.runs_days),
        ("teams_deliveries", _TEAMS_DELIVERIES, policy.runs_days),
        ("alert_evaluations", _EVALUATIONS, policy.evaluations_days),
        ("processed_events", _EVENTS, policy.events_days),
        ("job_runs", _JOB_RUNS, policy.job_runs_days),
        ("job_claims", _JOB_CLAIMS, policy.job_runs_days),
        ("rag_metrics", _measurements("rag_metrics"), policy.measurements_days),
        ("llm_call_metrics", _measurements("llm_call_metrics"), policy.measurements_days),
        ("query_log", _measurements("query_log"), policy.measurements_days),
    ]


async def purge(db: Database, policy: Policy) -> dict[str, int]:
    """Delete every row past its retention; returns the rows deleted per table (those with
    any)."""
    deleted: dict[str, int] = {}
    for table, statement, days in _plan(policy):
        if days <= 0:
            continue
        args: tuple[object, ...] = (days, policy.batch_size)
        if table == "processed_events":
            args += (policy.event_lease_seconds,)
        count = await _in_batches(db, statement, args, policy.batch_size)
        if count:
            deleted[table] = count
    return deleted


async def _in_batches(db: Database, statement: str, args: tuple[object, ...], size: int) -> int:
    total = 0
    while True:
        async with db.pool.acquire() as conn:
            result = await conn.execute(statement, *args)
        count = int(result.split()[-1])
        total += count
        if count < size:
            return total
        await asyncio.sleep(PAUSE_SECONDS)


async def claim(conn: asyncpg.Connection, job: str, slot: dt.datetime, replica: str) -> bool:
    """True for the one caller that gets to do `job` for `slot`."""
    taken = await conn.fetchval(
        """
        INSERT INTO job_claims (job, slot, claimed_by) VALUES ($1, $2, $3)
        ON CONFLICT (job, slot) DO NOTHING
        RETURNING true
        """,
        job,
        slot,
        replica,
    )
    return bool(taken)
