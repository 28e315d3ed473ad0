"""Three real `deskmate serve` processes on one PostgreSQL deliver 2,000 due runs to a fake Slack:
each exactly once, none lost — also when one of them is killed with SIGKILL mid-run."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.cron import idempotency_key
from storage.database import Database
from tests.support import DESKMATE
from tests.support.fakes.slack_api import start_fake_slack
from tests.support.history_slack import HistorySlack

RUNS, CHANNELS = 2000, 1000  # two runs per channel: Slack's pacing is 1 message/s per channel
DEADLINE_SECONDS = 45


@pytest.fixture
async def slack() -> AsyncIterator[HistorySlack]:
    fake = HistorySlack(delay=0.05)  # each post takes a while, so a kill lands mid-run
    runner = await start_fake_slack(fake)
    yield fake
    await runner.cleanup()


class Replicas:
    """`deskmate serve` processes on free ports, sharing the test's database."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.procs: list[subprocess.Popen[str]] = []

    async def start(self, count: int) -> None:
        for number in range(count):
            log = (self.logs / f"replica-{number}.log").open("w")
            proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once; the test waits below
                [*DESKMATE, "serve", "--port", "0"], env=self.env, stdout=subprocess.PIPE,
                stderr=log, text=True,
            )  # fmt: skip
            self.procs.append(proc)
        for proc in self.procs:  # each says so once its runtime (and scheduler) is running
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)  # type: ignore[union-attr]
            assert line.startswith("deskmate is listening"), self.log_tail()

    def name(self, proc: subprocess.Popen[str]) -> str:
        return f"{socket.gethostname()}:{proc.pid}"

    async def stop(self) -> list[int | None]:
        """SIGTERM the live ones; their exit codes (None for one already killed)."""
        codes: list[int | None] = []
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            killed = proc.returncode == -signal.SIGKILL
            code = await asyncio.to_thread(proc.wait, 30)
            codes.append(None if killed else code)
        return codes

    def log_tail(self) -> str:
        return "\n".join(p.read_text()[-2000:] for p in sorted(self.logs.glob("*.log")))


@pytest.fixture
async def replicas(cli_env: dict[str, str], slack: HistorySlack, tmp_path: Path
                   ) -> AsyncIterator[Replicas]:  # fmt: skip
    env = {**cli_env, "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "test-secret",
           "SLACK_API_URL": slack.url, "SCHEDULER_TICK_SECONDS": "0.2",
           "SCHEDULER_LEASE_SECONDS": "3", "SCHEDULER_CONCURRENCY": "8",
           "SCHEDULER_RETRY_BASE_SECONDS": "0.2", "LOG_LEVEL": "WARNING"}  # fmt: skip
    group = Replicas(env, tmp_path)
    yield group
    for proc in group.procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def add_due_runs(db: Database) -> None:
    """RUNS one-off schedules, due a minute ago, spread round-robin over CHANNELS channels."""
    async with db.pool.acquire() as conn:
        await conn.execute(
            """
            INSERT INTO scheduled_messages (tenant_id, platform, channel, kind, payload, run_at,
                                            next_run_at, created_by)
            SELECT 1, 'slack', 'C' || (i % $2), 'text', jsonb_build_object('text', 'run ' || i),
                   now() - interval '1 minute', now() - interval '1 minute', 'test'
            FROM generate_series(1, $1) AS i
            """,
            RUNS,
            CHANNELS,
        )


async def sent_count(db: Database) -> int:
    async with db.pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM scheduled_runs WHERE status = 'sent'")


async def wait_for_sent(db: Database, count: int, replicas: Replicas) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while await sent_count(db) < count:
        sent = await sent_count(db)
        assert time.monotonic() < deadline, f"only {sent} sent\n{replicas.log_tail()}"
        await asyncio.sleep(0.05)


async def assert_each_delivered_exactly_once(db: Database, slack: HistorySlack) -> list[dict]:
    async with db.pool.acquire() as conn:
        rows = [dict(r) for r in await conn.fetch(
            "SELECT schedule_id, slot, status, attempts, claimed_by, platform_message_id "
            "FROM scheduled_runs ORDER BY schedule_id"
        )]  # fmt: skip
        completed = await conn.fetchval(
            "SELECT count(*) FROM scheduled_messages WHERE status = 'completed'"
        )
    assert len(rows) == RUNS and completed == RUNS
    assert {r["status"] for r in rows} == {"sent"}
    posts = slack.posts_by_key()
    keys = [idempotency_key(r["schedule_id"], r["slot"]) for r in rows]
    assert len(posts) == RUNS and set(posts) == set(keys)
    assert set(posts.values()) == {1}, [k for k, n in posts.items() if n > 1][:5]
    for row, key in zip(rows, keys, strict=True):  # the recorded id is the post's own ts
        assert slack.ts_of(key) == [row["platform_message_id"]]
    return rows


async def test_three_replicas_deliver_every_run_exactly_once(
    db: Database, slack: HistorySlack, replicas: Replicas
) -> None:
    await replicas.start(3)
    await add_due_runs(db)
    await wait_for_sent(db, RUNS, replicas)
    rows = await assert_each_delivered_exactly_once(db, slack)
    workers = {r["claimed_by"] for r in rows}
    assert workers == {replicas.name(p) for p in replicas.procs}  # all three took part
    assert await replicas.stop() == [0, 0, 0]  # a clean, bounded stop on SIGTERM


async def test_a_replica_killed_mid_run_loses_nothing_and_posts_nothing_twice(
    db: Database, slack: HistorySlack, replicas: Replicas
) -> None:
    await replicas.start(3)
    await add_due_runs(db)
    await wait_for_sent(db, RUNS // 4, replicas)
    async with db.pool.acquire() as conn:  # the busiest replica, holding claims right now
        claims = {r["claimed_by"]: r["n"] for r in await conn.fetch(
            "SELECT claimed_by, count(*) AS n FROM scheduled_runs WHERE status = 'claimed' "
            "GROUP BY claimed_by"
        )}  # fmt: skip
    victim = max(replicas.procs, key=lambda p: claims.get(replicas.name(p), 0))
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert claims.get(replicas.name(victim), 0) > 0
    await wait_for_sent(db, RUNS, replicas)
    rows = await assert_each_delivered_exactly_once(db, slack)
    # The victim's claims were retried by the survivors once its lease expired.
    assert any(r["attempts"] > 1 and r["claimed_by"] != replicas.name(victim) for r in rows)
    assert [c for c in await replicas.stop() if c is not None] == [0, 0]
