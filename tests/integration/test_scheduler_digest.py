"""Digests of a seeded day: the offline extract exactly, Claude's prompt, and a digest schedule
delivered end to end."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from bot import digest
from bot.embeddings import HashEmbedder
from bot.errors import UsageError
from bot.llm import Claude
from bot.runtime import Runtime
from bot.schedules import ScheduleRequest, Schedules
from bot.settings import Settings
from handlers.slack.sender import ChannelPacer, SlackSender, slack_client
from scheduler.loop import Scheduler, materialise
from storage import digests
from storage.database import Database
from tests.support import TEST_DIMENSION
from tests.support.factories import add_document, add_user, clear_channel
from tests.support.fakes.anthropic_server import FakeAnthropic
from tests.support.fakes.slack_api import start_fake_slack
from tests.support.history_slack import HistorySlack

EMBEDDER = HashEmbedder(TEST_DIMENSION)
UTC = dt.UTC
START = dt.datetime(2026, 3, 9, 8, tzinfo=UTC)  # 09:00 in Berlin
END = dt.datetime(2026, 3, 10, 8, tzinfo=UTC)
SALES = digest.DigestScope("department", "sales")

EXTRACT = """\
**Questions asked:** 3 from 2 people
• Discount policy (2): “Who approves discounts above 20 percent?” · “What is the discount for a \
3-year deal?”
• Other (1): “Where do I park at the Lyon office?”

**Not answered from the documents:** 1
• “Where do I park at the Lyon office?”

**Documents added or changed:** 1
• Commission plan 2026 (sales): added

**Alerts:** none fired or resolved

**Usage:** 3 questions, 2 model calls, 1,650 tokens, $0.0123"""

ALERTS = """\
**Alerts:** 1 fired, 1 resolved
• LLM error rate (critical): fired Mon 09 Mar 11:15, value 0.32 vs threshold 0.2, resolved Mon \
09 Mar 12:00"""


async def ask(db: Database, user_id: int, text: str, at: dt.datetime, *, status: str = "answered",
              chunk_ids: tuple[int, ...] = (), channel: str | None = None,
              tokens: int = 0, cost: float = 0.0) -> None:  # fmt: skip
    """A question in query_log (and its model call), as the conversation service records it."""
    async with db.pool.acquire() as conn:
        query_id = await conn.fetchval(
            """
            INSERT INTO query_log (tenant_id, user_id, platform, channel_id, in_channel,
                                   query_text, answer_status, grounded, chunk_ids, created_at)
            VALUES (1, $1, 'slack', $2, $3, $4, $5, $6, $7, $8) RETURNING id
            """,
            user_id, channel or f"D-{user_id}", channel is not None, text, status,
            bool(chunk_ids) and status == "answered", list(chunk_ids), at,
        )  # fmt: skip
        if tokens:
            await conn.execute(
                """
                INSERT INTO llm_call_metrics (tenant_id, query_id, purpose, model, status,
                                              input_tokens, output_tokens, cost_usd, created_at)
                VALUES (1, $1, 'answer', 'claude-sonnet-4-6', 'ok', $2, 50, $3, $4)
                """,
                query_id, tokens - 50, cost, at,
            )  # fmt: skip


@pytest.fixture
async def seeded_day(db: Database) -> Database:
    """One day of a small organisation; the period is 9 March 09:00 – 10 March 09:00 Berlin."""
    discount = await add_document(db, EMBEDDER, "sales", "Discount policy", {"Approvals": "…"})
    await add_document(db, EMBEDDER, "sales", "Commission plan 2026", {"Rates": "…"})
    await add_document(db, EMBEDDER, "hr", "Leave policy", {"Days": "…"})
    await add_document(db, EMBEDDER, "general", "Employee handbook", {"Offices": "…"})
    async with db.pool.acquire() as conn:
        await conn.execute("UPDATE documents SET created_at = $1, updated_at = $1",
                           START - dt.timedelta(days=30))  # fmt: skip
        new = START + dt.timedelta(hours=2)
        await conn.execute("UPDATE documents SET created_at = $1, updated_at = $1 "
                           "WHERE title <> 'Discount policy'", new)  # fmt: skip
        chunk = await conn.fetchval("SELECT id FROM document_chunks WHERE document_id = $1",
                                    discount)  # fmt: skip
    await clear_channel(db, "slack", "C-SALES", "sales")
    sam = await add_user(db, "sam@example.com", ["sales"])
    hana = await add_user(db, "hana@example.com", ["hr"])
    bo = await add_user(db, "bo@example.com", [])
    hour = dt.timedelta(hours=1)
    await ask(db, sam, "Who approves discounts above 20 percent?", START + hour,
              chunk_ids=(chunk,), tokens=1000, cost=0.0075)  # fmt: skip
    await ask(db, sam, "What is the discount for a 3-year deal?", START + 2 * hour,
              chunk_ids=(chunk,), tokens=650, cost=0.0048)  # fmt: skip
    await ask(db, bo, "Where do I park at the Lyon office?", START + 3 * hour,
              status="no_context", channel="C-SALES")  # fmt: skip
    await ask(db, hana, "How many vacation days do I get?", START + hour)  # hr: not sales
    await ask(db, sam, "remember I sell in Lyon", START + hour, status="command")
    await ask(db, sam, "An older question", START - hour)  # before the period
    return db


async def add_alert_tables(db: Database) -> None:
    """Two resolved alerts (one in the period) in issue 7's tables; where a build has no alerts
    migration, minimal tables with the columns digests read stand in for them."""
    async with db.pool.acquire() as conn:
        if not await conn.fetchval("SELECT to_regclass('alert_instances') IS NOT NULL"):
            await conn.execute("""
                CREATE TABLE alert_rules (id bigserial PRIMARY KEY, tenant_id bigint NOT NULL,
                    name text NOT NULL, severity text NOT NULL, metric_type text,
                    condition text, threshold double precision);
                CREATE TABLE alert_instances (id bigserial PRIMARY KEY, tenant_id bigint NOT NULL,
                    rule_id bigint NOT NULL REFERENCES alert_rules, state text NOT NULL,
                    started_at timestamptz NOT NULL, resolved_at timestamptz,
                    metric_value double precision, threshold double precision, message text);
            """)  # fmt: skip
        await conn.execute("""
            INSERT INTO alert_rules (tenant_id, name, severity, metric_type, condition, threshold)
            VALUES (1, 'LLM error rate', 'critical', 'llm_error_rate', 'gt', 0.2),
                   (1, 'Cost', 'warning', 'llm_cost_usd', 'gt', 5);
            INSERT INTO alert_instances (tenant_id, rule_id, state, started_at, resolved_at,
                                         metric_value, threshold, message)
            SELECT 1, r.id, 'resolved', a.started_at, a.resolved_at, a.value, r.threshold, 'x'
            FROM alert_rules r JOIN (VALUES
                ('LLM error rate', '2026-03-09 10:15Z'::timestamptz,
                 '2026-03-09 11:00Z'::timestamptz, 0.32),
                ('Cost', '2026-03-01 10:15Z', '2026-03-01 11:00Z', 9)
            ) AS a (name, started_at, resolved_at, value) ON a.name = r.name;
        """)  # fmt: skip


async def gather(db: Database, scope: digest.DigestScope = SALES) -> digest.DigestData:
    return await digest.gather(
        db, 1, scope, platform="slack", start=START, end=END, timezone="Europe/Berlin",
        public_departments=["general"],
    )  # fmt: skip


async def test_offline_extract_of_a_seeded_day_is_exact(seeded_day: Database) -> None:
    data = await gather(seeded_day)
    assert digest.extract(data) == EXTRACT
    assert digest.title(data) == (
        "Digest for department sales: Mon 09 Mar 09:00 – Tue 10 Mar 09:00 (Europe/Berlin)"
    )


async def test_the_fired_alert_appears_once_the_alert_tables_exist(seeded_day: Database) -> None:
    async with seeded_day.pool.acquire() as conn:  # without the alert tables: no alerts
        before_alerts = conn.transaction()
        await before_alerts.start()
        await conn.execute("DROP TABLE IF EXISTS alert_instances CASCADE")
        assert await digests.alerts_in_period(conn, 1, START, END) == []
        await before_alerts.rollback()
    await add_alert_tables(seeded_day)
    text = digest.extract(await gather(seeded_day))
    assert text == EXTRACT.replace("**Alerts:** none fired or resolved", ALERTS)


async def test_channel_digest_covers_questions_asked_there(seeded_day: Database) -> None:
    text = digest.extract(await gather(seeded_day, digest.DigestScope("channel", "C-SALES")))
    assert text.splitlines()[:3] == [
        "**Questions asked:** 1 from 1 person",
        "• Other (1): “Where do I park at the Lyon office?”",
        "",
    ]
    # Documents of what the channel is cleared for (sales) and of public departments.
    assert "• Commission plan 2026 (sales): added\n• Employee handbook (general): added" in text
    assert "Leave policy" not in text


async def test_claude_writes_the_digest_from_the_extract(
    seeded_day: Database, settings: Settings, fake_anthropic: FakeAnthropic
) -> None:
    await add_alert_tables(seeded_day)
    fake_anthropic.default_text = "A busy day in sales."
    claude = Claude(settings.model_copy(update={
        "anthropic_api_key": SecretStr("sk-test"), "anthropic_base_url": fake_anthropic.url,
    }))  # fmt: skip
    try:
        text = await digest.write(seeded_day, claude, 1, await gather(seeded_day))
    finally:
        await claude.aclose()
    assert text == "A busy day in sales."
    prompt = fake_anthropic.prompt_text()
    for fact in ("Who approves discounts above 20 percent?", "What is the discount for a "
                 "3-year deal?", "**Not answered from the documents:** 1\n• “Where do I park",
                 "Commission plan 2026 (sales): added", "LLM error rate (critical): fired",
                 "$0.0123", "Digest for department sales", "name no person"):  # fmt: skip
        assert fact in prompt
    assert "vacation" not in prompt and "An older question" not in prompt
    async with seeded_day.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM llm_call_metrics "
                                   "WHERE purpose = 'digest'") == 1  # fmt: skip


@pytest.fixture
async def slack_runtime(settings: Settings) -> AsyncIterator[tuple[Runtime, HistorySlack]]:
    fake = HistorySlack()
    runner = await start_fake_slack(fake)
    rt = Runtime(settings.model_copy(update={"scheduler_enabled": False,
                                             "slack_api_url": fake.url}))  # fmt: skip
    await rt.start()
    rt.senders.register(SlackSender(slack_client(rt.settings, "xoxb-test"), ChannelPacer(0.0)))
    yield rt, fake
    await rt.stop()
    await runner.cleanup()


async def test_digest_schedule_posts_since_its_last_delivered_run(
    slack_runtime: tuple[Runtime, HistorySlack],
) -> None:
    runtime, slack = slack_runtime
    db, scheduler = runtime.db, Scheduler(runtime, replica="test")
    await clear_channel(db, "slack", "C-SALES", "sales")
    sam = await add_user(db, "sam@example.com", ["sales"])
    manager = Schedules(db, actor="test", platforms=("slack",))
    with pytest.raises(UsageError, match="slack channel C-HR is not cleared for sales"):
        await manager.add("default", ScheduleRequest("slack", "C-HR", digest="department:sales",
                                                     cron="0 0 1 1 *"))  # fmt: skip
    yearly = ScheduleRequest("slack", "C-SALES", digest="department:sales", cron="0 0 1 1 *",
                             timezone="UTC")  # fmt: skip
    schedule = await manager.add("default", yearly)
    await ask(db, sam, "Can I give 25 percent off?", dt.datetime.now(UTC) - dt.timedelta(hours=1))
    for _ in range(2):
        await manager.run_now("default", schedule.id)
        await materialise(db)
        assert await scheduler.worker.drain() == {"sent": 1}
    first, second = slack.channels["C-SALES"]
    assert "*Questions asked:* 1 from 1 person" in first["text"]
    assert "Can I give 25 percent off?" in first["text"]
    assert "*Questions asked:* none" in second["text"]  # its period starts at the first run
    header = slack.called("chat.postMessage")[0].body["blocks"][0]
    assert header["type"] == "header" and header["text"]["text"].startswith(
        "Digest for department sales: "
    )
