"""Alert rules: the state machine over injected metric rows and an injected clock, notifications
through a fake Slack, replicas, and custom SQL that cannot write."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

import pytest

from bot.alerts.evaluator import AlertEvaluator
from bot.alerts.rules import AlertRules
from bot.errors import UsageError
from bot.outbound import Senders
from bot.settings import Settings
from handlers.slack.sender import ChannelPacer, SlackSender, slack_client
from storage.alerts import NewRule
from storage.database import Database
from tests.support.fakes.slack_api import FakeSlack

T0 = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += dt.timedelta(minutes=minutes)


@dataclass
class AlertWorld:
    db: Database
    slack: FakeSlack
    clock: Clock
    rules: AlertRules
    evaluator: AlertEvaluator

    async def llm_calls(self, errors: int, ok: int) -> None:
        """Calls made just now (a minute ago), errors and successes."""
        at = self.clock.now - dt.timedelta(seconds=30)
        async with self.db.pool.acquire() as conn:
            for status, count in (("error", errors), ("ok", ok)):
                for _ in range(count):
                    await conn.execute(
                        "INSERT INTO llm_call_metrics (tenant_id, purpose, model, status, "
                        "latency_ms, created_at) VALUES (1, 'answer', 'm', $1, 900, $2)",
                        status,
                        at,
                    )

    async def tick(self, minutes: float = 1, *, errors: int = 0, ok: int = 0) -> None:
        self.clock.advance(minutes)
        if errors or ok:
            await self.llm_calls(errors, ok)
        await self.evaluator.run_due()

    def posts(self) -> list[dict]:
        return [c.body for c in self.slack.called("chat.postMessage")]

    async def rule_row(self, name: str) -> dict:
        async with self.db.pool.acquire() as conn:
            return dict(await conn.fetchrow("SELECT * FROM alert_rules WHERE name = $1", name))


def slack_senders(settings: Settings, fake: FakeSlack) -> Senders:
    senders = Senders()
    client = slack_client(settings.model_copy(update={"slack_api_url": fake.url}), "xoxb-test")
    senders.register(SlackSender(client, ChannelPacer(0)))
    return senders


@pytest.fixture
async def world(settings: Settings, db: Database, fake_slack: FakeSlack) -> AlertWorld:
    clock = Clock(T0)
    senders = slack_senders(settings, fake_slack)
    evaluator = AlertEvaluator(db, senders, clock=clock, replica="r1")
    return AlertWorld(db, fake_slack, clock, AlertRules(db, senders, actor="test"), evaluator)


ERROR_RULE = NewRule(
    name="LLM errors",
    metric_type="llm_error_rate",
    condition="gt",
    threshold=0.2,
    window_minutes=10,
    evaluation_interval_seconds=60,
    for_minutes=5,
    severity="critical",
    notification_channels=("slack:C-OPS",),
    cooldown_minutes=30,
)


async def test_pending_firing_reminder_ack_and_resolve(world: AlertWorld) -> None:
    await world.rules.add("default", ERROR_RULE, now=T0)
    await world.tick(0, errors=5, ok=5)  # 50% errors
    assert (await world.rule_row("LLM errors"))["state"] == "pending"
    for _ in range(4):
        await world.tick(1, errors=1)
    assert world.posts() == []  # still inside for_minutes
    await world.tick(1, errors=1)  # five minutes of breach
    firing = world.posts()
    assert len(firing) == 1
    assert firing[0]["channel"] == "C-OPS" and "Firing: LLM errors" in firing[0]["text"]
    button = firing[0]["blocks"][-1]["elements"][0]
    assert button["text"]["text"] == "Acknowledge"
    firing_ts = world.slack.called("chat.postMessage")[0].body and "1700000001.000100"

    for _ in range(29):
        await world.tick(1, errors=1)
    assert len(world.posts()) == 1  # cooldown not over
    await world.tick(1, errors=1)
    reminder = world.posts()[1]
    assert "Still firing" in reminder["text"] and reminder["thread_ts"] == firing_ts

    async with world.db.pool.acquire() as conn:
        instance_id = await conn.fetchval("SELECT id FROM alert_instances")
    await world.rules.acknowledge("default", instance_id, "ops@example.com")
    updated = world.slack.called("chat.update")[-1].body
    assert updated["ts"] == firing_ts and "Acknowledged by ops@example.com" in updated["text"]
    for _ in range(40):
        await world.tick(1, errors=1)
    assert len(world.posts()) == 2  # acknowledged: no more reminders

    await world.tick(11, ok=10)  # the errors leave the window
    resolved = world.posts()[2]
    assert resolved["thread_ts"] == firing_ts and "Resolved: LLM errors" in resolved["text"]
    async with world.db.pool.acquire() as conn:
        instance = await conn.fetchrow("SELECT state, acknowledged_by FROM alert_instances")
    assert dict(instance) == {"state": "resolved", "acknowledged_by": "ops@example.com"}
    assert (await world.rule_row("LLM errors"))["state"] == "ok"


async def test_a_dip_inside_for_minutes_does_not_fire(world: AlertWorld) -> None:
    await world.rules.add("default", ERROR_RULE, now=T0)
    await world.tick(0, errors=5, ok=5)
    await world.tick(2, errors=1)
    await world.tick(1, ok=200)  # one good evaluation: back to ok
    await world.tick(1, errors=300)
    await world.tick(2, errors=300)
    await world.tick(2, errors=300)  # four minutes since the new breach began
    assert world.posts() == []
    async with world.db.pool.acquire() as conn:
        outcomes = [
            r["outcome"]
            for r in await conn.fetch("SELECT outcome FROM alert_evaluations ORDER BY slot")
        ]
    assert outcomes == ["pending", "pending", "ok", "pending", "pending", "pending"]


async def test_no_data_is_reported_as_no_data_not_zero(world: AlertWorld) -> None:
    rule = NewRule(
        name="Slow",
        metric_type="llm_latency_p95_ms",
        condition="lt",
        threshold=100,
        notification_channels=("slack:C-OPS",),
    )
    await world.rules.add("default", rule, now=T0)
    await world.tick(0)
    async with world.db.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT value, outcome FROM alert_evaluations")
    assert dict(row) == {"value": None, "outcome": "no_data"}  # "< 100 ms" would fire on a 0
    assert world.posts() == []


async def test_two_replicas_evaluate_each_rule_once_per_interval(
    world: AlertWorld, settings: Settings, fake_slack: FakeSlack
) -> None:
    for number in range(200):
        await world.rules.add(
            "default",
            NewRule(
                name=f"volume {number}",
                metric_type="query_volume",
                condition="gte",
                threshold=0,
                notification_channels=(f"slack:C{number}",),
                cooldown_minutes=1000,
            ),
            now=T0,
        )
    other_db = Database(world.db.config)
    await other_db.start()
    try:
        # Claims of 10 rules: each replica needs 20 claims a round, so neither can take every
        # rule before the other's first claim runs (one claim of 500 made "both took part" a race).
        first, second = (
            AlertEvaluator(
                db, slack_senders(settings, fake_slack), clock=world.clock, replica=name, batch=10
            )
            for db, name in ((world.db, "r1"), (other_db, "r2"))
        )
        for _ in range(10):
            await asyncio.gather(first.run_due(), second.run_due())
            world.clock.advance(1)
    finally:
        await other_db.stop()
    async with world.db.pool.acquire() as conn:
        per_rule = await conn.fetch(
            "SELECT rule_id, count(*) AS n, count(DISTINCT slot) AS slots FROM alert_evaluations "
            "GROUP BY rule_id"
        )
        replicas = await conn.fetchval("SELECT count(DISTINCT replica) FROM alert_evaluations")
    assert len(per_rule) == 200
    assert all(r["n"] == 10 and r["slots"] == 10 for r in per_rule)
    assert replicas == 2  # both took part
    channels = [p["channel"] for p in world.posts()]
    assert sorted(channels) == sorted(f"C{n}" for n in range(200))  # one firing post each


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("DELETE FROM query_log", "may only read"),
        ("UPDATE llm_call_metrics SET cost_usd = 0", "may only read"),
        ("CREATE TABLE sneaky (x int)", "may only read"),
        ("SELECT 1; DELETE FROM query_log", "exactly one statement"),
        ("SELECT pg_sleep(60)", "pg_sleep() is not allowed"),
        ("SELECT 'high'::text", "must return a number"),
        ("SELECT x FROM generate_series(1, 3) x", "one row, not 3"),
        ("SELECT 1 WHERE false", "one row, not 0"),
        ("SELECT count(*) FROM users", "users is not an alert view"),
    ],
)
async def test_custom_sql_that_writes_hangs_or_misleads_is_rejected(
    world: AlertWorld, sql: str, reason: str
) -> None:
    async with world.db.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO query_log (tenant_id, platform, query_text, answer_status) "
            "VALUES (1, 'web', 'q', 'answered')"
        )
    rule = NewRule(
        name="custom", metric_type="custom_sql", condition="gt", threshold=1, custom_sql=sql
    )
    with pytest.raises(UsageError) as caught:
        await world.rules.add("default", rule, now=T0)
    assert str(caught.value).startswith("custom_sql rejected:") and reason in str(caught.value)
    async with world.db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM query_log") == 1
        assert await conn.fetchval("SELECT count(*) FROM alert_rules") == 0
        assert await conn.fetchval("SELECT to_regclass('sneaky')") is None


async def test_custom_sql_sees_only_its_tenant(world: AlertWorld) -> None:
    async with world.db.pool.acquire() as conn:
        other = await conn.fetchval(
            "INSERT INTO tenants (slug, name) VALUES ('acme', 'Acme') RETURNING id"
        )
        for tenant in (1, other, other):
            await conn.execute(
                "INSERT INTO query_log (tenant_id, platform, query_text, "
                "answer_status) VALUES ($1, 'web', 'q', 'answered')",
                tenant,
            )
    rule = NewRule(
        name="mine",
        metric_type="custom_sql",
        condition="gt",
        threshold=5,
        custom_sql="SELECT count(*) FROM query_log",
    )
    await world.rules.add("default", rule, now=T0)
    await world.tick(0)
    async with world.db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT value FROM alert_evaluations") == 1.0


async def test_an_evaluation_error_is_reported_once_per_episode(world: AlertWorld) -> None:
    breaking = (
        "SELECT CASE WHEN count(*) > 0 THEN 1 / (count(*) - count(*)) ELSE 0 END FROM query_log "
        "WHERE answer_status = 'error'"
    )
    rule = NewRule(
        name="fragile",
        metric_type="custom_sql",
        condition="gt",
        threshold=1,
        custom_sql=breaking,
        notification_channels=("slack:C-OPS",),
    )
    await world.rules.add("default", rule, now=T0)
    async with world.db.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO query_log (tenant_id, platform, query_text, answer_status) "
            "VALUES (1, 'web', 'q', 'error')"
        )
    for _ in range(3):
        await world.tick(1)
    errors = [p for p in world.posts() if "Alert rule failing" in p["text"]]
    assert len(errors) == 1 and "division by zero" in errors[0]["text"]
    async with world.db.pool.acquire() as conn:
        outcomes = await conn.fetch("SELECT outcome FROM alert_evaluations")
    assert [r["outcome"] for r in outcomes] == ["error"] * 3


async def test_the_service_loop_evaluates_rules_on_its_own(
    settings: Settings, db: Database, fake_slack: FakeSlack
) -> None:
    from deskmate.process import Process

    looping = settings.model_copy(update={"scheduler_enabled": True, "scheduler_tick_seconds": 0.2})
    process = Process(looping)
    runtime = process.runtime
    await process.start()
    try:
        client = slack_client(looping.model_copy(update={"slack_api_url": fake_slack.url}), "x")
        runtime.senders.register(SlackSender(client, ChannelPacer(0)))
        # Slack is off in these settings (the sender is the test's own), so the runtime's rules
        # would refuse a Slack target: the rule comes in the way the CLI of a Slack setup adds it.
        await AlertRules(db, actor="test").add(
            "default",
            NewRule(
                name="Always",
                metric_type="query_volume",
                condition="gte",
                threshold=0,
                notification_channels=("slack:C-LOOP",),
            ),
        )
        for _ in range(50):
            if fake_slack.called("chat.postMessage"):
                break
            await asyncio.sleep(0.1)
    finally:
        await process.stop()
    posts = fake_slack.called("chat.postMessage")
    assert [p.body["channel"] for p in posts] == ["C-LOOP"]
    async with db.pool.acquire() as conn:
        recorded = await conn.fetchval(
            "SELECT count(*) FROM job_runs WHERE job = 'alerts.evaluate'"
        )
    assert recorded >= 1
