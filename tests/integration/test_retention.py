"""Retention: the daily pass deletes what is past its retention and nothing else, a batch at a
time, and one replica does it however many run the scheduler."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import asyncpg
import pytest

from bot.runtime import Runtime
from bot.settings import Settings
from scheduler.loop import Scheduler, retention_policy
from storage import retention
from storage.database import Database

OLD, RECENT = "now() - interval '200 days'", "now() - interval '1 day'"
ANCIENT = "now() - interval '500 days'"


async def schedule(conn: asyncpg.Connection, status: str, cron: str | None = None) -> int:
    return await conn.fetchval(
        """
        INSERT INTO scheduled_messages (tenant_id, platform, channel, kind, payload, run_at, cron,
                                        status, created_by)
        VALUES (1, 'slack', 'C1', 'text', '{"text": "hi"}', $1, $2, $3, 'test') RETURNING id
        """,
        None if cron else dt.datetime.now(dt.UTC), cron, status,
    )  # fmt: skip


async def run(conn: asyncpg.Connection, schedule_id: int, status: str, slot: str) -> int:
    return await conn.fetchval(
        f"INSERT INTO scheduled_runs (tenant_id, schedule_id, slot, status) "
        f"VALUES (1, $1, {slot}, $2) RETURNING id",
        schedule_id, status,
    )  # fmt: skip


async def seed_runs(conn: asyncpg.Connection) -> dict[str, int]:
    """Runs of a finished one-off, of a live weekly digest, and of one still going."""
    one_off = await schedule(conn, "completed")
    weekly = await schedule(conn, "active", cron="0 9 * * 1")
    rare = await schedule(conn, "active", cron="0 9 1 1 *")
    return {
        "old sent": await run(conn, one_off, "sent", OLD),
        "old failed": await run(conn, weekly, "failed", f"{OLD} - interval '1 week'"),
        "old sent, later one sent too": await run(conn, weekly, "sent", f"{OLD}"),
        "recent sent": await run(conn, weekly, "sent", RECENT),
        "old pending": await run(conn, weekly, "pending", f"{OLD} + interval '1 week'"),
        "old claimed": await run(conn, weekly, "claimed", f"{OLD} + interval '2 weeks'"),
        # A yearly digest's last delivery is where its next period starts: kept however old.
        "latest sent of a live schedule": await run(conn, rare, "sent", OLD),
    }


async def event(
    conn: asyncpg.Connection, name: str, status: str, received: str, updated: str
) -> None:
    await conn.execute(
        f"INSERT INTO processed_events (platform, event_id, tenant_id, status, received_at, "
        f"updated_at) VALUES ('slack', $1, 1, $2, {received}, {updated})",
        name, status,
    )  # fmt: skip


async def seed_events(conn: asyncpg.Connection) -> None:
    await event(conn, "old done", "done", OLD, OLD)
    await event(conn, "recent done", "done", RECENT, RECENT)
    # Received long ago and still being answered (its lease renewed a moment ago): kept.
    await event(conn, "old, still answering", "processing", OLD, "now()")
    await event(conn, "old, abandoned", "processing", OLD, OLD)
    await event(conn, "old, failed", "failed", OLD, OLD)


async def seed_measurements(conn: asyncpg.Connection) -> None:
    for age in (ANCIENT, RECENT):
        query = await conn.fetchval(
            f"INSERT INTO query_log (tenant_id, platform, query_text, answer_status, created_at) "
            f"VALUES (1, 'web', 'how?', 'answered', {age}) RETURNING id"
        )
        await conn.execute(
            f"INSERT INTO llm_call_metrics (tenant_id, query_id, purpose, model, status, "
            f"created_at) VALUES (1, $1, 'answer', 'm', 'ok', {age})",
            query,
        )
        await conn.execute(
            f"INSERT INTO rag_metrics (tenant_id, query_id, created_at) VALUES (1, $1, {age})",
            query,
        )


async def seed_the_rest(conn: asyncpg.Connection) -> None:
    rule = await conn.fetchval(
        "INSERT INTO alert_rules (tenant_id, name, metric_type, condition, threshold) "
        "VALUES (1, 'r', 'query_volume', 'gt', 1) RETURNING id"
    )
    for age in (OLD, RECENT):
        await conn.execute(
            f"INSERT INTO alert_evaluations (tenant_id, rule_id, slot, evaluated_at, outcome) "
            f"VALUES (1, $1, {age}, {age}, 'ok')",
            rule,
        )
        await conn.execute(
            f"INSERT INTO job_runs (job, status, started_at) VALUES ('x', 'succeeded', {age})"
        )
        await conn.execute(
            f"INSERT INTO teams_deliveries (tenant_id, idempotency_key, conversation_id, "
            f"message_id, created_at) VALUES (1, $1, 'c', 'm', {age})",
            f"key {age}",
        )


async def ages(conn: asyncpg.Connection, table: str, column: str) -> list[str]:
    """Which of the table's rows are left: 'old' or 'recent' each."""
    rows = await conn.fetch(
        f"SELECT CASE WHEN {column} < now() - interval '100 days' THEN 'old' ELSE 'recent' END "
        f"AS age FROM {table} ORDER BY 1"
    )
    return [r["age"] for r in rows]


async def test_retention_deletes_only_what_is_past_its_time(db: Database) -> None:
    async with db.pool.acquire() as conn:
        runs = await seed_runs(conn)
        await seed_events(conn)
        await seed_measurements(conn)
        await seed_the_rest(conn)
    # Batches of two: every table needs several statements, as a real backlog would.
    deleted = await retention.purge(db, retention.Policy(batch_size=2))

    async with db.pool.acquire() as conn:
        kept_runs = {r["id"] for r in await conn.fetch("SELECT id FROM scheduled_runs")}
        events = {r["event_id"] for r in await conn.fetch("SELECT event_id FROM processed_events")}
        assert {name for name, id_ in runs.items() if id_ in kept_runs} == {
            "recent sent", "old pending", "old claimed", "latest sent of a live schedule",
        }  # fmt: skip
        assert events == {"recent done", "old, still answering"}
        # Measurements are kept 400 days: the 500-day-old query goes with its measurements.
        for table in ("query_log", "llm_call_metrics", "rag_metrics"):
            assert await ages(conn, table, "created_at") == ["recent"], table
        assert await ages(conn, "alert_evaluations", "slot") == ["recent"]
        assert await ages(conn, "job_runs", "started_at") == ["recent"]
        assert await ages(conn, "teams_deliveries", "created_at") == ["recent"]
    assert deleted == {
        "scheduled_runs": 3, "teams_deliveries": 1, "alert_evaluations": 1,
        "processed_events": 3, "job_runs": 1, "rag_metrics": 1, "llm_call_metrics": 1,
        "query_log": 1,
    }  # fmt: skip


async def test_zero_days_keeps_everything(db: Database) -> None:
    async with db.pool.acquire() as conn:
        await seed_events(conn)
        await seed_measurements(conn)
    keep = retention.Policy(events_days=0, measurements_days=0)
    assert await retention.purge(db, keep) == {}
    async with db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM processed_events") == 5
        assert await conn.fetchval("SELECT count(*) FROM query_log") == 2


@pytest.fixture
async def runtimes(settings: Settings) -> AsyncIterator[list[Runtime]]:
    """Two processes' cores on one database, as two replicas."""
    started = []
    try:
        for _ in range(2):
            runtime = Runtime(settings)
            await runtime.start()
            started.append(runtime)
        yield started
    finally:
        for runtime in started:
            await runtime.stop()


async def test_the_daily_pass_runs_once_across_two_schedulers(
    runtimes: list[Runtime], db: Database
) -> None:
    async with db.pool.acquire() as conn:
        await seed_events(conn)
    first, second = (Scheduler(r, replica=f"replica-{n}") for n, r in enumerate(runtimes))
    now = dt.datetime.now(dt.UTC).replace(hour=12, minute=0)  # well inside one day's slot
    results = await asyncio.gather(first.apply_retention(now), second.apply_retention(now))

    worked = [r for r in results if r]
    assert len(worked) == 1 and worked[0]["deleted"] == {"processed_events": 3}
    async with db.pool.acquire() as conn:
        claims = await conn.fetch("SELECT job, slot, claimed_by FROM job_claims")
    assert [c["job"] for c in claims] == ["retention.daily"]
    # The same day again (a late firing, a restarted replica): nothing more to do.
    assert await first.apply_retention(now + dt.timedelta(minutes=5)) == {}
    # The next day's slot is a new claim.
    assert await second.apply_retention(now + dt.timedelta(days=1)) != {}


def test_the_policy_comes_from_the_settings(settings: Settings) -> None:
    changed = settings.model_copy(update={"retention_runs_days": 30, "retention_batch_size": 7})
    policy = retention_policy(changed)
    assert (policy.runs_days, policy.batch_size, policy.measurements_days) == (30, 7, 400)
