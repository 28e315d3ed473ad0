"""Three real `deskmate serve` replicas on one PostgreSQL deliver a burst of due runs into a few
Slack channels: every channel gets at most one post per second (Slack's pace), however many
replicas post, and every run arrives exactly once."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from storage.database import Database
from tests.e2e.test_scheduler_replicas import Replicas
from tests.support.fakes.slack_api import start_fake_slack
from tests.support.history_slack import HistorySlack

RUNS, CHANNELS = 240, 30  # eight posts per channel: seven seconds at one a second
PACE_SECONDS = 1.0
# Posts leave a replica a moment after their claim; on a busy machine that moment varies.
TOLERANCE_SECONDS = 0.1
DEADLINE_SECONDS = 60


@dataclass
class TimedSlack(HistorySlack):
    """A fake Slack that notes when each post reached it, per channel."""

    arrivals: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def _answer(self, method: str, body: dict[str, Any], *rest: Any) -> dict[str, Any]:
        if method == "chat.postMessage":
            self.arrivals[str(body.get("channel"))].append(time.monotonic())
        return super()._answer(method, body, *rest)

    def gaps(self) -> list[float]:
        """Seconds between consecutive posts into the same channel."""
        return [
            later - earlier
            for times in self.arrivals.values()
            for earlier, later in zip(sorted(times), sorted(times)[1:], strict=False)
        ]


@pytest.fixture
async def slack() -> AsyncIterator[TimedSlack]:
    fake = TimedSlack()
    runner = await start_fake_slack(fake)
    yield fake
    await runner.cleanup()


@pytest.fixture
async def replicas(
    cli_env: dict[str, str], slack: TimedSlack, tmp_path: Path
) -> AsyncIterator[Replicas]:
    env = {**cli_env, "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": "test-secret",
           "SLACK_API_URL": slack.url, "SCHEDULER_TICK_SECONDS": "0.2",
           "SCHEDULER_CONCURRENCY": "8", "PACING_SLACK_SECONDS": str(PACE_SECONDS),
           "LOG_LEVEL": "WARNING"}  # fmt: skip
    group = Replicas(env, tmp_path)
    yield group
    for proc in group.procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def add_due_runs(db: Database) -> None:
    """RUNS one-off schedules, all due at once, round-robin over CHANNELS channels."""
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


async def wait_until_sent(db: Database, replicas: Replicas) -> None:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        async with db.pool.acquire() as conn:
            sent = await conn.fetchval("SELECT count(*) FROM scheduled_runs WHERE status = 'sent'")
        if sent == RUNS:
            return
        assert time.monotonic() < deadline, f"only {sent} sent\n{replicas.log_tail()}"
        await asyncio.sleep(0.1)


async def test_three_replicas_keep_slacks_pace_in_every_channel(
    db: Database, slack: TimedSlack, replicas: Replicas
) -> None:
    await replicas.start(3)
    await add_due_runs(db)
    await wait_until_sent(db, replicas)

    posts = slack.posts_by_key()
    assert len(posts) == RUNS and set(posts.values()) == {1}  # each exactly once
    assert sorted(len(t) for t in slack.arrivals.values()) == [RUNS // CHANNELS] * CHANNELS
    gaps = slack.gaps()
    assert min(gaps) >= PACE_SECONDS - TOLERANCE_SECONDS, sorted(gaps)[:10]
    async with db.pool.acquire() as conn:
        workers = await conn.fetchval("SELECT count(DISTINCT claimed_by) FROM scheduled_runs")
    assert workers == 3  # the pace held with all three replicas posting
    assert await replicas.stop() == [0, 0, 0]
