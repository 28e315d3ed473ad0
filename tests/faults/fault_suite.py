"""The fault suite (`make faults`, docs/faults.md): three `deskmate serve` replicas on one
PostgreSQL answer a stream of Slack messages and deliver scheduled messages while a replica is
killed mid-answer, another mid-delivery, PostgreSQL restarts and Claude fails; then every
message must have been answered exactly once (or apologised for) and every slot posted exactly
once.

The file is not named test_*.py, so `make test` never collects it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from bot.cron import idempotency_key
from bot.event_ledger import MAX_ATTEMPTS
from tests.faults.fakes import AnswerSlack, FlakyClaude
from tests.faults.postgres import RestartablePostgres
from tests.faults.replicas import Replicas
from tests.faults.report import Run, render, tally_events, tally_slots, write_latest
from tests.faults.traffic import PEOPLE, Message, SlackDeliveries, make_messages
from tests.support import TEST_DIMENSION
from tests.support.fakes.slack_api import start_fake_slack
from tests.support.slack_requests import SIGNING_SECRET

pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web.NotAppKeyWarning")

DOC = Path(__file__).resolve().parents[2] / "docs" / "faults.md"
MESSAGES, SENDING_SECONDS = 300, 45.0
SLOTS, SLOT_CHANNELS = 600, 200  # three runs per channel: Slack's pacing is one post/s per channel
# Short leases, so the sweeper resumes a dead replica's work within the run.
SETTINGS = {
    "EVENT_LEASE_SECONDS": "8",
    "SCHEDULER_LEASE_SECONDS": "4",
    "SCHEDULER_TICK_SECONDS": "0.5",
    "SCHEDULER_CONCURRENCY": "8",
    "SCHEDULER_RETRY_BASE_SECONDS": "0.5",
    "ANSWER_CONCURRENCY": "6",
}
SETTLE_DEADLINE_SECONDS = 300


@pytest.fixture
async def postgres(tmp_path: Path) -> AsyncIterator[RestartablePostgres]:
    server = RestartablePostgres(tmp_path)
    await asyncio.to_thread(server.start)
    try:
        await server.create_database()
        yield server
    finally:
        await asyncio.to_thread(server.stop)


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@pytest.fixture
async def slack() -> AsyncIterator[AnswerSlack]:
    fake = AnswerSlack(keep_history=True, delay=0.02)  # a post takes a moment, as Slack's do
    for person in PEOPLE:
        fake.add_user(person, f"{person.lower()}@example.com")
    runner = await start_fake_slack(fake)
    yield fake
    await runner.cleanup()


@pytest.fixture
async def claude() -> AsyncIterator[FlakyClaude]:
    fake = FlakyClaude()
    # A replica killed mid-answer hangs up on the fake: nothing to report.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    runner, fake.url = await serve(fake.app())
    yield fake
    await runner.cleanup()


@pytest.fixture
async def replicas(
    postgres: RestartablePostgres, slack: AnswerSlack, claude: FlakyClaude, tmp_path: Path
) -> AsyncIterator[Replicas]:
    env = {k: v for k, v in os.environ.items()
           if not k.upper().startswith(("SLACK_", "ANTHROPIC_"))}  # fmt: skip
    env.update(SETTINGS, DATABASE_URL=postgres.url, DESKMATE_DATA_DIR=str(tmp_path / "data"),
               EMBEDDING_PROVIDER="hash", EMBEDDING_DIMENSION=str(TEST_DIMENSION),
               SLACK_BOT_TOKEN="xoxb-faults", SLACK_SIGNING_SECRET=SIGNING_SECRET,
               SLACK_API_URL=slack.url, ANTHROPIC_API_KEY="sk-faults",
               ANTHROPIC_BASE_URL=claude.url, LOG_LEVEL="WARNING",
               PYTHONPATH=str(DOC.parents[1]))  # fmt: skip
    (tmp_path / "logs").mkdir()
    group = Replicas(env, tmp_path / "logs", count=3)
    try:
        yield group
    finally:
        group.force_stop()


async def test_nothing_lost_nothing_twice(
    postgres: RestartablePostgres, slack: AnswerSlack, claude: FlakyClaude, replicas: Replicas
) -> None:
    started = time.monotonic()
    await replicas.start_all()
    rng = random.Random(14)
    messages = make_messages(MESSAGES, rng, seconds=SENDING_SECONDS)
    async with SlackDeliveries(replicas.urls, rng) as deliveries:
        sending = asyncio.create_task(deliveries.send_all(messages, SENDING_SECONDS))
        await asyncio.sleep(10)
        await kill_mid_answer(replicas, messages, slack, started)  # and start it again
        claude.outage(6)  # every answer begun in these seconds ends in an apology
        await asyncio.sleep(8)
        down = await postgres.restart(down_for=4)
        await sending
    await add_due_slots(postgres.url)
    slack.rate_limit("chat.postMessage", times=10)  # Slack pushes back now and then
    await kill_mid_delivery(replicas, postgres.url, started)
    await settle(postgres.url, slack, replicas)
    run = await tally(postgres.url, messages, slack, replicas, claude)
    run.database_down_seconds, run.seconds = down, time.monotonic() - started
    await replicas.stop()
    text = render(run)
    write_latest(DOC, text)
    print(f"\n\nFault suite report (also in {DOC}):\n\n{text}\n")
    assert run.passed, text


async def kill_mid_answer(
    replicas: Replicas, messages: list[Message], slack: AnswerSlack, started: float
) -> None:
    """kill -9 the replica with the most acked messages not answered yet."""
    finished = slack.finished_by_thread()
    waiting = Counter(
        replicas.number_of(m.acked_by) for m in messages
        if m.acked_by is not None and m.thread not in finished
    )  # fmt: skip
    assert waiting, "no replica was answering anything: the kill would test nothing"
    victim, holding = waiting.most_common(1)[0]
    await replicas.kill(victim, holding=holding, what="mid-answer", started=started,
                        back_after=3)  # fmt: skip


async def add_due_slots(url: str) -> None:
    """SLOTS one-off schedules, all due, spread round-robin over SLOT_CHANNELS channels."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            """
            INSERT INTO scheduled_messages (tenant_id, platform, channel, kind, payload, run_at,
                                            next_run_at, created_by)
            SELECT 1, 'slack', 'C-DIGEST-' || (i % $2), 'text',
                   jsonb_build_object('text', 'digest ' || i),
                   now() - interval '1 minute', now() - interval '1 minute', 'faults'
            FROM generate_series(1, $1) AS i
            """,
            SLOTS,
            SLOT_CHANNELS,
        )
    finally:
        await conn.close()


async def kill_mid_delivery(replicas: Replicas, url: str, started: float) -> None:
    """Once a quarter of the slots are sent, kill -9 the replica holding the most claims."""
    conn = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + 60
        while await conn.fetchval("SELECT count(*) FROM scheduled_runs WHERE status = 'sent'"
                                  ) < SLOTS // 4:  # fmt: skip
            assert time.monotonic() < deadline, replicas.log_tail()
            await asyncio.sleep(0.05)
        claims = {r["claimed_by"]: r["n"] for r in await conn.fetch(
            "SELECT claimed_by, count(*) AS n FROM scheduled_runs WHERE status = 'claimed' "
            "GROUP BY claimed_by"
        )}  # fmt: skip
    finally:
        await conn.close()
    victim = max(range(len(replicas.ports)), key=lambda n: claims.get(replicas.name(n), 0))
    holding = claims.get(replicas.name(victim), 0)
    assert holding, "no replica held a scheduled run: the kill would test nothing"
    await replicas.kill(victim, holding=holding, what="mid-delivery", started=started,
                        back_after=3)  # fmt: skip


async def settle(url: str, slack: AnswerSlack, replicas: Replicas) -> None:
    """Wait until nothing is left to do: every slot sent (or failed for good), no event being
    answered or waiting for a retry, and Slack quiet for a while."""
    conn = await asyncpg.connect(url)
    try:
        deadline = time.monotonic() + SETTLE_DEADLINE_SECONDS
        calls, quiet_since = -1, time.monotonic()
        while True:
            busy = await conn.fetchval(
                """
                SELECT (SELECT count(*) FROM scheduled_runs WHERE status IN ('pending', 'claimed'))
                     + (SELECT count(*) FROM scheduled_messages WHERE status = 'active')
                     + (SELECT count(*) FROM processed_events
                        WHERE status = 'processing'
                           OR (status = 'failed' AND attempts < $1))
                """,
                MAX_ATTEMPTS,
            )
            if len(slack.calls) != calls:
                calls, quiet_since = len(slack.calls), time.monotonic()
            if busy == 0 and time.monotonic() - quiet_since > 3:
                return
            assert time.monotonic() < deadline, f"{busy} still busy\n{replicas.log_tail()}"
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


async def tally(url: str, messages: list[Message], slack: AnswerSlack, replicas: Replicas,
                claude: FlakyClaude) -> Run:  # fmt: skip
    conn = await asyncpg.connect(url)
    try:
        stored = await counts(conn, STORED_QUESTIONS)
        attempts = await counts(conn, EVENT_ATTEMPTS)
        runs = await conn.fetch("SELECT schedule_id, slot, attempts FROM scheduled_runs")
    finally:
        await conn.close()
    events = tally_events(messages, slack.finished_by_thread(), slack.unfinished_threads(),
                          stored, attempts, slack.stubs_left())  # fmt: skip
    keys = [idempotency_key(r["schedule_id"], r["slot"]) for r in runs]
    slots = tally_slots(keys + ["never materialised"] * (SLOTS - len(runs)), slack.posts_by_key(),
                        [r["attempts"] for r in runs])  # fmt: skip
    # The caller fills in the times.
    return Run(events, slots, replicas.kills, database_down_seconds=0.0, llm=claude.drawn,
               seconds=0.0, settings=SETTINGS)  # fmt: skip


STORED_QUESTIONS = """
    SELECT platform_message_id AS key, count(*) AS n FROM session_messages
    WHERE role = 'user' GROUP BY 1
"""
EVENT_ATTEMPTS = "SELECT event_id AS key, attempts AS n FROM processed_events"


async def counts(conn: asyncpg.Connection, sql: str) -> dict[str, int]:
    rows: list[Any] = await conn.fetch(sql)
    return {str(r["key"]): int(r["n"]) for r in rows}
