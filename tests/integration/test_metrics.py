"""What an operator's Prometheus sees on /metrics after one answered message: every metric
deskmate declares, and those on the answer's path moved (the real app and Slack endpoint, a fake
Claude and a fake Slack, the embedded PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from bot import metrics
from bot.embeddings import HashEmbedder
from bot.settings import Settings
from storage.database import ACK_POOL_SIZE, Database
from tests.support import TEST_DIMENSION
from tests.support.factories import add_document, add_user
from tests.support.fakes.anthropic_server import FakeAnthropic, Text, Tool
from tests.support.fakes.slack_api import FakeSlack
from tests.support.slack_requests import SlackService, dm_event, post_event, running_slack

SALES_RULE = "Discount approvals above 20 percent need the VP Sales"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class Scrape:
    families: set[str]
    samples: Samples

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def since(self, before: Scrape, name: str, **labels: str) -> float:
        """How much a sample grew since `before`."""
        return self.value(name, **labels) - before.value(name, **labels)


async def scrape(client: TestClient) -> Scrape:
    response = await client.get("/metrics")
    assert response.status == 200
    families, samples = set(), {}
    for family in text_string_to_metric_families(await response.text()):
        families.add(family.name)
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Scrape(families, samples)


@pytest.fixture
async def world(
    settings: Settings, db: Database, fake_slack: FakeSlack, fake_anthropic: FakeAnthropic
) -> AsyncIterator[SlackService]:
    await add_user(db, "ana@example.com", ["sales"], slack_id="U-ANA")
    await add_document(db, HashEmbedder(TEST_DIMENSION), "sales", "Discount policy",
                       {"Approvals": SALES_RULE})  # fmt: skip
    async with running_slack(settings, fake_slack, fake_anthropic) as service:
        yield service


async def test_one_answered_message_shows_every_metric(world: SlackService) -> None:
    before = await scrape(world.client)
    world.claude.script += [Text("Ask the VP Sales above 20% [1]."), Tool({"operations": []})]
    response = await post_event(world.client, dm_event("who approves discounts?"))
    assert response.status == 200
    await world.runtime.tasks.join()
    after = await scrape(world.client)

    declared = {family.name for family in metrics.REGISTRY.collect()}
    assert declared - after.families == set()
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "python_info"} <= declared

    def moved(name: str, **labels: str) -> float:
        return after.since(before, name, **labels)

    model = world.runtime.settings.anthropic_model
    assert moved("deskmate_events_acked_total", platform="slack", outcome="new") == 1
    assert moved("deskmate_answers_total", platform="slack", status="answered") == 1
    assert moved("deskmate_answer_seconds_count", platform="slack") == 1
    # The answer and, in a DM, the memory extraction after it.
    assert moved("deskmate_llm_calls_total", model=model, outcome="ok") == 2
    assert moved("deskmate_llm_call_seconds_count", model=model, outcome="ok") == 2
    assert moved("deskmate_llm_time_to_first_token_seconds_count", model=model) == 1
    for kind in ("input", "output", "cache_read"):
        assert moved("deskmate_llm_tokens_total", model=model, kind=kind) > 0, kind
    assert moved("deskmate_llm_cost_usd_total", model=model) > 0
    assert moved("deskmate_retrieval_seconds_count", arm="chunks") == 1
    assert moved("deskmate_retrieval_seconds_count", arm="memories") == 1
    assert moved("deskmate_embedding_texts_total", kind="query") >= 1
    assert moved("deskmate_embedding_seconds_count", kind="query") >= 1
    assert moved("deskmate_http_requests_total", route="/slack/events", status="200") == 1
    assert after.value("process_cpu_seconds_total") > 0


async def test_pools_are_read_when_prometheus_scrapes(world: SlackService) -> None:
    settings = world.runtime.settings
    async with world.runtime.db.pool.acquire():
        seen = await scrape(world.client)
    for pool, most in (("main", settings.db_pool_max_size), ("ack", ACK_POOL_SIZE)):
        assert seen.value("deskmate_db_pool_max_connections", pool=pool) == most
        in_use = seen.value("deskmate_db_pool_in_use_connections", pool=pool)
        idle = seen.value("deskmate_db_pool_idle_connections", pool=pool)
        assert in_use + idle == seen.value("deskmate_db_pool_open_connections", pool=pool)
    assert seen.value("deskmate_db_pool_in_use_connections", pool="main") >= 1


async def test_a_failed_claude_call_is_counted_by_kind(world: SlackService) -> None:
    from tests.support.fakes.anthropic_server import Fail

    before = await scrape(world.client)
    world.claude.script += [Fail(400, error_type="invalid_request_error")]
    await post_event(world.client, dm_event("who approves discounts?"))
    await world.runtime.tasks.join()
    after = await scrape(world.client)

    model = world.runtime.settings.anthropic_model
    assert after.since(before, "deskmate_llm_errors_total", kind="BadRequestError") == 1
    assert after.since(before, "deskmate_llm_calls_total", model=model, outcome="error") == 1
    assert after.since(before, "deskmate_answers_total", platform="slack", status="error") == 1


async def test_a_late_delivery_and_an_alert_evaluation_are_measured(world: SlackService) -> None:
    from bot.alerts.rules import AlertRules
    from bot.directory import PLATFORMS
    from bot.schedules import ScheduleRequest, Schedules
    from scheduler.loop import Scheduler, materialise
    from storage.alerts import NewRule

    runtime = world.runtime
    before = await scrape(world.client)
    schedule = await Schedules(runtime.db, actor="test", platforms=PLATFORMS).add(
        "default", ScheduleRequest(platform="slack", channel="C1", text="Stand-up", at="2099-01-01")
    )
    async with runtime.db.pool.acquire() as conn:  # due two minutes ago
        await conn.execute(
            "UPDATE scheduled_messages SET next_run_at = now() - interval '2 min', "
            "run_at = now() - interval '2 min' WHERE id = $1",
            schedule.id,
        )
    await AlertRules(runtime.db, runtime.senders, actor="test").add("default", NewRule(
        name="LLM errors", metric_type="llm_error_rate", condition="gt", threshold=0.2,
        window_minutes=10, evaluation_interval_seconds=60, for_minutes=5, severity="critical",
        notification_channels=("slack:C-OPS",), cooldown_minutes=30,
    ))  # fmt: skip
    scheduler = Scheduler(runtime, replica="test-replica")
    await materialise(runtime.db)
    assert dict(await scheduler.worker.drain(budget_seconds=3)) == {"sent": 1}
    await scheduler.evaluate_alerts()
    after = await scrape(world.client)

    def moved(name: str, **labels: str) -> float:
        return after.since(before, name, **labels)

    assert moved("deskmate_scheduler_claims_total", platform="slack") == 1
    assert moved("deskmate_scheduled_runs_total", platform="slack", outcome="sent") == 1
    assert moved("deskmate_scheduler_lag_seconds_count", platform="slack") == 1
    assert moved("deskmate_scheduler_lag_seconds_sum", platform="slack") >= 120
    assert moved("deskmate_alert_evaluation_cycle_seconds_count") == 1
    assert moved("deskmate_alert_evaluations_total", outcome="no_data") == 1
