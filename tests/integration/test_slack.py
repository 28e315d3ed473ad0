"""Slack end to end: signed requests through the real endpoint, Bolt, the conversation service,
a fake Claude and a fake Slack Web API."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bot.embeddings import HashEmbedder
from bot.runtime import Runtime
from bot.settings import Settings
from handlers.http import create_app
from handlers.slack import install
from storage.database import Database
from tests.support import TEST_DIMENSION
from tests.support.factories import add_document, add_user, clear_channel
from tests.support.fakes.anthropic_server import FakeAnthropic, Text
from tests.support.fakes.slack_api import FakeSlack
from tests.support.slack_requests import (
    BOT,
    SIGNING_SECRET,
    dm_event,
    mention_event,
    post_click,
    post_command,
    post_event,
)

HR_SECRET = "Salary bands: level L5 engineers earn 78,000 to 96,000 EUR"
SALES_RULE = "Discount approvals: above 20 percent needs the VP Sales"


@dataclass
class SlackWorld:
    client: TestClient
    runtime: Runtime
    slack: FakeSlack
    claude: FakeAnthropic
    db: Database

    async def settle(self) -> None:
        await self.runtime.tasks.join()

    async def count(self, table: str) -> int:
        async with self.db.pool.acquire() as conn:
            return await conn.fetchval(f"SELECT count(*) FROM {table}")


@pytest.fixture
async def world(
    settings: Settings, db: Database, fake_slack: FakeSlack, fake_anthropic: FakeAnthropic
) -> AsyncIterator[SlackWorld]:
    slack_settings = settings.model_copy(update={
        "slack_bot_token": SecretStr("xoxb-test-token"),
        "slack_signing_secret": SecretStr(SIGNING_SECRET),
        "slack_api_url": fake_slack.url,
        "anthropic_api_key": SecretStr("sk-test"),
        "anthropic_base_url": fake_anthropic.url,
    })  # fmt: skip
    embedder = HashEmbedder(TEST_DIMENSION)
    await add_user(db, "ana@example.com", ["sales"], slack_id="U-ANA")
    await add_document(db, embedder, "sales", "Discount policy", {"Approvals": SALES_RULE})
    await add_document(db, embedder, "hr", "Salary bands", {"Engineering": HR_SECRET})
    await clear_channel(db, "slack", "C-SALES", "sales")
    runtime = Runtime(slack_settings)
    await runtime.start()
    async with TestClient(TestServer(create_app(runtime, [install]))) as client:
        yield SlackWorld(client, runtime, fake_slack, fake_anthropic, db)
        await runtime.tasks.join()
    await runtime.stop()


async def test_bad_signature_and_stale_timestamp_are_401_and_leave_no_trace(
    world: SlackWorld,
) -> None:
    forged = await post_event(world.client, dm_event("hi"), secret="not-the-secret")
    stale = await post_event(world.client, dm_event("hi"), timestamp=int(time.time()) - 301)
    await world.settle()
    assert (forged.status, stale.status) == (401, 401)
    for table in ("chat_sessions", "session_messages", "processed_events", "query_log"):
        assert await world.count(table) == 0
    assert world.claude.requests == []


async def test_url_verification_is_answered(world: SlackWorld) -> None:
    import json

    from tests.support.slack_requests import sign

    body = json.dumps({"type": "url_verification", "challenge": "c-123", "token": "x"})
    response = await world.client.post(
        "/slack/events", data=body, headers={"Content-Type": "application/json", **sign(body)}
    )
    assert response.status == 200
    assert "c-123" in await response.text()


async def test_a_dm_gets_one_streamed_answer_in_its_thread(world: SlackWorld) -> None:
    world.claude.script.append(Text("Ask the VP Sales above 20% [1]. " * 20, chunk=40))
    response = await post_event(world.client, dm_event("who approves discounts?"))
    assert response.status == 200
    await world.settle()
    starts = world.slack.called("chat.startStream")
    assert len(starts) == 1
    assert starts[0].body["thread_ts"] == "1700000000.000100"
    assert starts[0].body["channel"] == "D1"
    streamed = "".join(world.slack.posted_texts())
    assert streamed.startswith("Ask the VP Sales above 20% [1].")
    stop = world.slack.called("chat.stopStream")[0].body
    kinds = [block["type"] for block in stop["blocks"]]
    assert kinds == ["context", "actions"]  # sources, then 👍/👎
    assert "Discount policy" in stop["blocks"][0]["elements"][0]["text"]
    assert world.slack.called("assistant.threads.setStatus")[0].body["status"] == "is thinking…"
    assert world.slack.called("chat.postMessage") == []


async def test_mention_and_its_message_twin_get_one_answer(world: SlackWorld) -> None:
    mention = mention_event("who approves discounts?", channel="C-SALES")
    twin = dict(mention, type="message", channel_type="channel")
    await post_event(world.client, mention, event_id="Ev-mention")
    await post_event(world.client, twin, event_id="Ev-message")
    await world.settle()
    placeholders = world.slack.called("chat.postMessage")
    assert len(placeholders) == 1
    assert placeholders[0].body["thread_ts"] == mention["ts"]
    assert len(world.claude.answer_requests) == 1


async def test_the_same_event_delivered_three_times_is_answered_once(world: SlackWorld) -> None:
    event = mention_event("who approves discounts?", channel="C-SALES")
    for retry in (None, 1, 2):
        response = await post_event(world.client, event, retry=retry)
        assert response.status == 200
    await world.settle()
    assert len(world.claude.answer_requests) == 1
    assert len(world.slack.called("chat.postMessage")) == 1


async def test_a_retry_after_a_crash_mid_answer_is_answered_once(world: SlackWorld) -> None:
    event = mention_event("who approves discounts?", channel="C-SALES")
    key = f"T1:C-SALES:{event['ts']}"
    async with world.db.pool.acquire() as conn:  # the first attempt's process died here
        await conn.execute(
            "INSERT INTO processed_events (platform, event_id, tenant_id, status, updated_at) "
            "VALUES ('slack', $1, 1, 'processing', now() - interval '10 minutes')", key,
        )  # fmt: skip
    await post_event(world.client, event, retry=1)
    await world.settle()
    await post_event(world.client, event, retry=2)
    await world.settle()
    assert len(world.claude.answer_requests) == 1
    async with world.db.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT status, attempts FROM processed_events")
    assert dict(row) == {"status": "done", "attempts": 2}


async def test_ack_comes_back_long_before_a_slow_answer(world: SlackWorld) -> None:
    world.claude.script.append(Text("Slow but sure [1].", delay=2.0))
    started = time.perf_counter()
    response = await post_event(world.client, mention_event("who approves?", channel="C-SALES"))
    acked = time.perf_counter() - started
    assert response.status == 200
    assert acked < 1.0  # Slack needs the ack within 3 s
    assert world.slack.called("chat.update") == []  # the answer was not there at ack time
    await world.settle()
    final = world.slack.called("chat.update")[-1].body
    assert final["text"] == "Slow but sure [1]."


async def test_channel_answer_uses_cleared_chunks_and_no_memories(world: SlackWorld) -> None:
    await post_event(world.client, dm_event("remember that I manage the Berlin warehouse"))
    await world.settle()
    question = "salary bands and discount approvals?"
    await post_event(world.client, mention_event(question, channel="C-SALES", ts="1.2"))
    await world.settle()
    channel_context = world.claude.answer_requests[-1]["system"][1]["text"]
    await post_event(world.client, dm_event("Berlin warehouse discount approvals?", ts="1.3"))
    await world.settle()
    dm_prompt = world.claude.prompt_text()
    assert SALES_RULE in channel_context and HR_SECRET not in channel_context
    assert "<memories>" not in channel_context and "Berlin" not in channel_context
    assert "- I manage the Berlin warehouse" in dm_prompt


async def test_a_long_answer_arrives_as_several_valid_messages(world: SlackWorld) -> None:
    paragraph = ("The discount policy says that approvals depend on the deal size and the "
                 "margin, and that every exception must be documented in the CRM. ")  # fmt: skip
    long_answer = "\n\n".join(paragraph * 4 for _ in range(48))  # ~4,600 words
    assert len(long_answer.split()) > 4500
    world.claude.script.append(Text(long_answer, chunk=500))
    await post_event(world.client, mention_event("tell me everything", channel="C-SALES"))
    await world.settle()
    final = world.slack.called("chat.update")[-1].body
    follow_ups = world.slack.called("chat.postMessage")[1:]
    messages = [final, *(c.body for c in follow_ups)]
    assert len(messages) >= 7
    for message in messages:
        assert len(message["text"]) <= 4000
        bodies = [b for b in message["blocks"] if b["type"] == "markdown"]
        assert len(bodies) == 1 and len(bodies[0]["text"]) <= 12_000  # Slack's markdown limit
    rebuilt = " ".join(m["text"] for m in messages)
    assert rebuilt.split() == long_answer.split()  # nothing lost, nothing doubled


async def test_rate_limited_post_is_retried_after_retry_after(world: SlackWorld) -> None:
    world.slack.rate_limit("chat.postMessage", times=1, retry_after=1)
    started = time.perf_counter()
    await post_event(world.client, mention_event("who approves?", channel="C-SALES"))
    await world.settle()
    posts = world.slack.called("chat.postMessage")
    assert len(posts) == 2  # the 429, then the retry
    assert time.perf_counter() - started >= 1.0
    assert world.slack.called("chat.update")  # and the answer went on


async def test_feedback_click_is_stored(world: SlackWorld) -> None:
    await post_event(world.client, mention_event("who approves?", channel="C-SALES"))
    await world.settle()
    buttons = world.slack.called("chat.update")[-1].body["blocks"][-1]["elements"]
    down = next(b for b in buttons if b["text"]["text"] == "👎")
    response_url = world.slack.url.replace("/api/", "/response_url/1")
    response = await post_click(world.client, down["action_id"], down["value"], response_url)
    assert response.status == 200
    await world.settle()
    async with world.db.pool.acquire() as conn:
        rating = await conn.fetchval("SELECT rating FROM answer_feedback")
    assert rating == -1
    said = world.slack.called("response_url:1")[0].body
    assert said["response_type"] == "ephemeral"
    assert said["text"].startswith("Thanks")


async def test_slash_remember_stores_a_memory_and_answers_ephemerally(world: SlackWorld) -> None:
    response_url = world.slack.url.replace("/api/", "/response_url/7")
    response = await post_command(world.client, "remember I own the Lyon accounts", response_url)
    assert response.status == 200
    await world.settle()
    async with world.db.pool.acquire() as conn:
        memories = await conn.fetch("SELECT content FROM memories")
    assert [m["content"] for m in memories] == ["I own the Lyon accounts"]
    said = world.slack.called("response_url:7")[0].body
    assert said["response_type"] == "ephemeral"
    assert "I'll remember" in said["text"]


async def test_unknown_slack_user_is_matched_by_email(world: SlackWorld) -> None:
    await add_user(world.db, "bo@example.com", ["hr"])
    world.slack.add_user("U-BO", "Bo@Example.com", "Bo Berg")
    await post_event(world.client, dm_event("salary bands for L5?", user="U-BO"))
    await world.settle()
    assert HR_SECRET in world.claude.prompt_text()  # Bo's hr access applied
    async with world.db.pool.acquire() as conn:
        linked = await conn.fetchval(
            "SELECT u.email FROM platform_identities i JOIN users u ON u.id = i.user_id "
            "WHERE i.platform_user_id = 'U-BO'"
        )
    assert linked == "bo@example.com"
    await post_event(world.client, dm_event("again", user="U-BO", ts="1.9"))
    await world.settle()
    assert len(world.slack.called("users.info")) == 1  # cached in platform_identities


async def test_thread_replies_continue_only_where_deskmate_was_mentioned(
    world: SlackWorld,
) -> None:
    root = mention_event("who approves?", channel="C-SALES", ts="10.1")
    await post_event(world.client, root)
    await world.settle()
    reply_in_thread = {"type": "message", "channel_type": "channel", "channel": "C-SALES",
                       "user": "U-ANA", "text": "and above 30%?", "ts": "10.2",
                       "thread_ts": "10.1", "team": "T1"}  # fmt: skip
    elsewhere = dict(reply_in_thread, ts="11.2", thread_ts="11.1")
    await post_event(world.client, reply_in_thread, event_id="Ev2")
    await post_event(world.client, elsewhere, event_id="Ev3")
    await world.settle()
    assert len(world.claude.answer_requests) == 2  # the root and the reply in its thread
    assert world.claude.answer_requests[-1]["messages"][-1]["content"] == "and above 30%?"


async def test_edits_deletes_joins_and_bots_are_ignored(world: SlackWorld) -> None:
    ignored = [
        dict(dm_event("x"), subtype="message_changed"),
        dict(dm_event("x"), subtype="message_deleted"),
        dict(dm_event("x"), subtype="channel_join"),
        dict(dm_event("x"), bot_id="B2", subtype="bot_message"),
        dm_event("x", user=BOT),
    ]
    for number, event in enumerate(ignored):
        await post_event(world.client, event, event_id=f"Ev{number}")
    await world.settle()
    assert world.claude.requests == []
    assert await world.count("processed_events") == 0


async def test_app_home_lists_memories(world: SlackWorld) -> None:
    await post_event(world.client, dm_event("remember that I manage the Berlin warehouse"))
    await world.settle()
    await post_event(world.client, {"type": "app_home_opened", "user": "U-ANA", "tab": "home"},
                     event_id="Ev-home")  # fmt: skip
    await world.settle()
    view = world.slack.called("views.publish")[0].body["view"]
    text = str(view)
    assert view["type"] == "home" and "I manage the Berlin warehouse" in text
    assert "Your schedules" in text and "Alerts firing now" in text


async def test_acknowledge_button_on_an_alert(world: SlackWorld) -> None:
    from storage.alerts import NewRule

    rule = NewRule(
        name="Any traffic",
        metric_type="query_volume",
        condition="gte",
        threshold=0,
        notification_channels=("slack:C-OPS",),
    )
    await world.runtime.alert_rules.add("default", rule)
    await world.runtime.alert_evaluator.run_due()
    alert = world.slack.called("chat.postMessage")[-1].body
    button = alert["blocks"][-1]["elements"][0]
    response_url = world.slack.url.replace("/api/", "/response_url/3")
    response = await post_click(world.client, button["action_id"], button["value"], response_url)
    assert response.status == 200
    await world.settle()
    async with world.db.pool.acquire() as conn:
        acked = await conn.fetchval("SELECT acknowledged_by FROM alert_instances")
    assert acked == "ana@example.com"
    updated = world.slack.called("chat.update")[-1].body
    assert "Acknowledged by ana@example.com" in updated["text"]
    assert all(block["type"] != "actions" for block in updated["blocks"])  # button gone
    assert world.slack.called("response_url:3")[0].body["text"].startswith("Acknowledged")


async def test_slash_alerts_lists_what_is_firing(world: SlackWorld) -> None:
    from storage.alerts import NewRule

    response_url = world.slack.url.replace("/api/", "/response_url/5")
    await post_command(world.client, "alerts", response_url)
    await world.settle()
    assert world.slack.called("response_url:5")[0].body["text"] == "No alert is firing. ✅"
    rule = NewRule(
        name="Any traffic",
        metric_type="query_volume",
        condition="gte",
        threshold=0,
        severity="critical",
        notification_channels=("slack:C-OPS",),
    )
    await world.runtime.alert_rules.add("default", rule)
    await world.runtime.alert_evaluator.run_due()
    await post_command(world.client, "alerts", response_url)
    await world.settle()
    listed = world.slack.called("response_url:5")[1].body["text"]
    assert listed.startswith("Firing now:\n• *Any traffic* (critical) since")


async def test_slash_schedule_adds_and_lists_a_schedule_for_this_channel(
    world: SlackWorld,
) -> None:
    response_url = world.slack.url.replace("/api/", "/response_url/8")
    await post_command(
        world.client,
        'schedule add --cron "0 9 * * 1-5" --tz Europe/Paris --text "Stand-up in five minutes"',
        response_url,
    )
    await world.settle()
    added = world.slack.called("response_url:8")[0].body["text"]
    assert added.startswith(
        "Scheduled #1: text “Stand-up in five minutes”, cron '0 9 * * 1-5' Europe/Paris; next "
    )
    for command in ("schedule list", "schedule pause 1", "schedule frobnicate"):
        await post_command(world.client, command, response_url)
        await world.settle()
    said = [c.body["text"] for c in world.slack.called("response_url:8")]
    assert said[1].startswith("Schedules posting here:\n• #1 text “Stand-up in five minutes”")
    assert said[2] == "Schedule #1 is now paused."
    assert "Usage: `schedule list`" in said[3]
    async with world.db.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT platform, channel, created_by, status FROM scheduled_messages"
        )
    assert dict(row) == {
        "platform": "slack",
        "channel": "C1",
        "created_by": "ana@example.com",
        "status": "paused",
    }


async def test_malformed_and_oversized_payloads_get_a_4xx_and_store_nothing(
    world: SlackWorld,
) -> None:
    from tests.support.slack_requests import sign

    garbage = "{not json"
    malformed = await world.client.post(
        "/slack/events", data=garbage, headers={"Content-Type": "application/json", **sign(garbage)}
    )
    huge = "x" * (2 * 1024 * 1024)
    oversized = await world.client.post(
        "/slack/events", data=huge, headers={"Content-Type": "application/json", **sign(huge)}
    )
    await world.settle()
    assert 400 <= malformed.status < 500
    assert oversized.status == 413
    for table in ("chat_sessions", "session_messages", "processed_events"):
        assert await world.count(table) == 0
