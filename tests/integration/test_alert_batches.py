"""Alert rules on built-in metrics are evaluated in batches: a cycle over hundreds of rules is a
handful of statements, and each rule still gets its own value, episode, cooldown and notices."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.alerts.evaluator import AlertEvaluator
from bot.alerts.rules import AlertRules
from bot.outbound import Senders
from bot.settings import Settings
from handlers.slack.sender import ChannelPacer, SlackSender, slack_client
from storage.alerts import NewRule
from storage.database import Database
from tests.support.fakes.slack_api import FakeSlack
from tests.support.round_trips import round_trips

T0 = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def evaluator(
    settings: Settings, db: Database, fake_slack: FakeSlack, clock: Clock
) -> AlertEvaluator:
    senders = Senders()
    client = slack_client(settings.model_copy(update={"slack_api_url": fake_slack.url}), "xoxb")
    senders.register(SlackSender(client, ChannelPacer(0)))
    return AlertEvaluator(db, senders, clock=clock, replica="r1")


def rule(name: str, metric: str = "query_volume", **fields: object) -> NewRule:
    values: dict = {"condition": "gt", "threshold": 1000.0, "window_minutes": 10} | fields
    return NewRule(name=name, metric_type=metric, **values)


async def add_rules(db: Database, *rules: NewRule, tenant: str = "default") -> None:
    manager = AlertRules(db, actor="test")
    for new in rules:
        await manager.add(tenant, new, now=T0)


async def questions(db: Database, count: int, at: dt.datetime, tenant_id: int = 1) -> None:
    async with db.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO query_log (tenant_id, platform, query_text, answer_status, created_at) "
            "SELECT $1, 'web', 'q', 'answered', $2 FROM generate_series(1, $3)",
            tenant_id, at, count,
        )  # fmt: skip


async def llm_calls(db: Database, errors: int, ok: int, at: dt.datetime) -> None:
    async with db.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO llm_call_metrics (tenant_id, purpose, model, status, latency_ms, "
            "created_at) SELECT 1, 'answer', 'm', "
            "CASE WHEN i <= $1::int THEN 'error' ELSE 'ok' END, 900, $3 "
            "FROM generate_series(1, $1::int + $2::int) AS i",
            errors, ok, at,
        )  # fmt: skip


async def outcomes(db: Database) -> dict[str, list[str]]:
    async with db.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT r.name, e.outcome FROM alert_evaluations e JOIN alert_rules r "
            "ON r.id = e.rule_id ORDER BY e.slot, r.name"
        )
    found: dict[str, list[str]] = {}
    for row in rows:
        found.setdefault(row["name"], []).append(row["outcome"])
    return found


async def test_a_cycle_over_300_rules_is_a_few_statements_not_a_few_per_rule(
    db: Database, evaluator: AlertEvaluator, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics = ("query_volume", "llm_error_rate", "llm_latency_p95_ms", "delivery_failures")
    await add_rules(db, *(rule(f"rule {n}", metrics[n % 4], window_minutes=1 + n % 30)
                          for n in range(300)))  # fmt: skip
    await questions(db, 5, T0 - dt.timedelta(seconds=30))
    with round_trips(monkeypatch) as sent:
        assert await evaluator.run_due() == 300
    # Claim, measure, read the open episodes, record: the same four for 3 rules or 300.
    assert len(sent) <= 5, sent
    async with db.pool.acquire() as conn:
        volumes = await conn.fetch(
            "SELECT DISTINCT e.value FROM alert_evaluations e JOIN alert_rules r "
            "ON r.id = e.rule_id WHERE r.metric_type = 'query_volume'"
        )
        evaluated = await conn.fetchval("SELECT count(DISTINCT rule_id) FROM alert_evaluations")
    assert [r["value"] for r in volumes] == [5.0]
    assert evaluated == 300


async def test_each_rule_of_a_batch_keeps_its_own_episode_cooldown_and_notices(
    db: Database, evaluator: AlertEvaluator, fake_slack: FakeSlack, clock: Clock
) -> None:
    await add_rules(
        db,
        rule(
            "errors",
            "llm_error_rate",
            threshold=0.2,
            cooldown_minutes=2,
            notification_channels=("slack:C-OPS",),
        ),
        rule("errors, after 5 min", "llm_error_rate", threshold=0.2, for_minutes=5),
        rule("slow answers", "response_time_p95_ms", condition="lt", threshold=100),
        rule("busy", threshold=1, notification_channels=("slack:C-BUSY",)),
        rule("custom", "custom_sql", custom_sql="SELECT count(*) FROM query_log", threshold=1),
    )
    await llm_calls(db, errors=5, ok=5, at=T0 - dt.timedelta(minutes=1))
    await questions(db, 3, T0 - dt.timedelta(minutes=1))
    for _ in range(3):  # three minutes of the same breach
        await evaluator.run_due()
        clock.now += dt.timedelta(minutes=1)
    clock.now += dt.timedelta(minutes=10)  # everything leaves the window
    await evaluator.run_due()

    assert await outcomes(db) == {
        "errors": ["firing", "firing", "firing", "resolved"],
        "errors, after 5 min": ["pending", "pending", "pending", "no_data"],
        # No answers in the window is no data, never a p95 of 0 ms that is "< 100".
        "slow answers": ["no_data"] * 4,
        "busy": ["firing", "firing", "firing", "resolved"],
        "custom": ["firing"] * 4,  # its query counts every question, whenever asked
    }
    posts = [c.body for c in fake_slack.called("chat.postMessage")]
    ops = [p for p in posts if p["channel"] == "C-OPS"]
    busy = [p for p in posts if p["channel"] == "C-BUSY"]
    # Cooldown of two minutes: one reminder, at the third evaluation, in the firing's thread.
    assert len(ops) == 3 and "Firing: errors" in ops[0]["text"]
    assert "50.0%" in ops[0]["text"] and "Still firing: errors" in ops[1]["text"]
    assert "Resolved: errors" in ops[2]["text"] and "after 13 min" in ops[2]["text"]
    assert ops[1]["thread_ts"] == ops[2]["thread_ts"] is not None
    assert len(busy) == 2 and "Resolved: busy" in busy[1]["text"]  # default cooldown: an hour
    async with db.pool.acquire() as conn:
        episodes = await conn.fetch(
            "SELECT r.name, i.state FROM alert_instances i JOIN alert_rules r ON r.id = i.rule_id "
            "ORDER BY r.name"
        )
        rules = {r["name"]: r["state"] for r in await conn.fetch(
            "SELECT name, state FROM alert_rules")}  # fmt: skip
    assert [(e["name"], e["state"]) for e in episodes] == [
        ("busy", "resolved"), ("custom", "firing"), ("errors", "resolved"),
    ]  # fmt: skip
    assert rules == {"errors": "ok", "errors, after 5 min": "ok", "slow answers": "ok",
                     "busy": "ok", "custom": "firing"}  # fmt: skip


async def test_rules_of_two_organisations_in_one_batch_each_see_their_own_rows(
    db: Database, evaluator: AlertEvaluator
) -> None:
    async with db.pool.acquire() as conn:
        acme = await conn.fetchval(
            "INSERT INTO tenants (slug, name) VALUES ('acme', 'Acme') RETURNING id"
        )
    await add_rules(db, rule("volume"))
    await add_rules(db, rule("volume"), tenant="acme")
    await questions(db, 2, T0 - dt.timedelta(minutes=1))
    await questions(db, 7, T0 - dt.timedelta(minutes=1), tenant_id=acme)
    await evaluator.run_due()
    async with db.pool.acquire() as conn:
        values = await conn.fetch(
            "SELECT tenant_id, value FROM alert_evaluations ORDER BY tenant_id"
        )
    assert [(v["tenant_id"], v["value"]) for v in values] == [(1, 2.0), (acme, 7.0)]
