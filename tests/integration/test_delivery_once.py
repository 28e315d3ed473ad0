"""Exactly once when a delivery is retried: a replica posts and dies before recording it, its
lease expires, and the retry must find that post instead of posting again, in a busy Slack
channel (many messages since) and in the web chat. Real senders, the real database."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest

from bot.cron import idempotency_key
from bot.directory import PLATFORMS
from bot.outbound import Delivery, Outbound, Target
from bot.runtime import Runtime
from bot.schedules import ScheduleRequest, Schedules
from bot.settings import Settings
from handlers.slack.sender import ChannelPacer, SlackSender, slack_client
from handlers.webchat.hub import Hub
from handlers.webchat.sender import ChannelPosts, WebSender
from scheduler.loop import Scheduler, materialise
from storage import jobs
from tests.support.fakes.slack_api import FakeSlack, start_fake_slack


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack(keep_history=True)
    runner = await start_fake_slack(fake)
    yield fake
    await runner.cleanup()


@pytest.fixture
async def runtime(settings: Settings, slack: FakeSlack) -> AsyncIterator[Runtime]:
    rt = Runtime(settings.model_copy(update={
        "slack_api_url": slack.url, "scheduler_max_attempts": 3,
        "scheduler_retry_base_seconds": 0.0, "scheduler_retry_max_seconds": 0.0,
    }))  # fmt: skip
    await rt.start()
    rt.senders.register(SlackSender(slack_client(rt.settings, "xoxb-test"), ChannelPacer(0.0)))
    rt.senders.register(WebSender(ChannelPosts(rt.db, Hub())))
    yield rt
    await rt.tasks.join()
    await rt.stop()


async def due_schedule(runtime: Runtime, platform: str, channel: str, text: str) -> int:
    manager = Schedules(runtime.db, actor="test", platforms=PLATFORMS)
    made = await manager.add("default", ScheduleRequest(platform, channel, text=text,
                                                        at="2099-01-01T09:00"))  # fmt: skip
    async with runtime.db.pool.acquire() as conn:
        await conn.execute("UPDATE scheduled_messages SET next_run_at = now(), run_at = now() "
                           "WHERE id = $1", made.id)  # fmt: skip
    return made.id


async def post_and_die(runtime: Runtime, platform: str, channel: str, text: str) -> str:
    """A replica claims the due run, posts it, and dies before recording the post; its short
    lease then expires. Returns the run's idempotency key."""
    await materialise(runtime.db)
    async with runtime.db.pool.acquire() as conn:
        [claim] = await jobs.claim(conn, "doomed", [platform], 10, 0.2)
    key = idempotency_key(claim.schedule_id, claim.slot)
    await runtime.senders.get(platform).post(
        Target(platform, channel), Outbound(text, idempotency_key=key)
    )
    await asyncio.sleep(0.3)
    return key


async def retry(runtime: Runtime) -> dict[str, int]:
    scheduler = Scheduler(runtime, replica="survivor")
    await materialise(runtime.db)
    return dict(await scheduler.worker.drain())


def posts_with(slack: FakeSlack, key: str) -> list[str]:
    return [
        message["ts"]
        for messages in slack.history.values()
        for message in messages
        if ((message.get("metadata") or {}).get("event_payload") or {}).get("key") == key
    ]


async def run_of(runtime: Runtime, schedule_id: int) -> jobs.Run:
    async with runtime.db.pool.acquire() as conn:
        [run] = await jobs.runs_of(conn, 1, schedule_id)
    return run


async def test_a_retried_run_finds_its_post_in_a_busy_slack_channel(
    runtime: Runtime, slack: FakeSlack
) -> None:
    schedule_id = await due_schedule(runtime, "slack", "C-BUSY", "Stand-up in 5 minutes")
    key = await post_and_die(runtime, "slack", "C-BUSY", "Stand-up in 5 minutes")
    slack.chatter("C-BUSY", 450)  # people keep talking while the lease runs out
    assert await retry(runtime) == {"found": 1}
    [posted] = posts_with(slack, key)
    run = await run_of(runtime, schedule_id)
    assert (run.status, run.attempts, run.platform_message_id) == ("sent", 2, posted)
    looks = slack.called("conversations.history")
    assert len(looks) == 3  # 451 messages since the slot, in pages of 200
    slot = run.slot - dt.timedelta(minutes=5)  # the clock margin
    assert {float(look.body["oldest"]) for look in looks} == {slot.timestamp()}
    assert [look.body.get("cursor") for look in looks] == [None, "200", "400"]


async def test_a_post_from_before_the_first_attempt_is_not_taken_for_it(
    runtime: Runtime, slack: FakeSlack
) -> None:
    sender = runtime.senders.get("slack")
    target = Target("slack", "C-OLD")
    await sender.post(target, Outbound("Yesterday's", idempotency_key="k-1"))
    slack.chatter("C-OLD", 5)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    assert await sender.find(target, "k-1", since=later) is None
    found = await sender.find(target, "k-1", since=later - dt.timedelta(minutes=11))
    assert found is not None and found.message_id == posts_with(slack, "k-1")[0]


async def test_a_follow_up_in_a_busy_thread_is_found_among_its_replies(
    runtime: Runtime, slack: FakeSlack
) -> None:
    sender = runtime.senders.get("slack")
    root = await sender.post(Target("slack", "C-ALERTS"), Outbound("Alert firing"))
    thread = Target("slack", "C-ALERTS", thread=root.thread)
    slack.chatter("C-ALERTS", 250, thread=root.thread)  # a long discussion in the thread
    await sender.post(thread, Outbound("Resolved", idempotency_key="alert:1:resolved"))
    slack.chatter("C-ALERTS", 50)  # and the channel goes on
    found = await sender.find(thread, "alert:1:resolved")  # an alert retry gives no `since`
    [posted] = posts_with(slack, "alert:1:resolved")
    assert found == Delivery(message_id=posted, thread=root.thread)
    assert len(slack.called("conversations.replies")) == 2


async def test_a_retried_web_delivery_is_posted_once(runtime: Runtime) -> None:
    schedule_id = await due_schedule(runtime, "web", "#general", "Lunch is served")
    key = await post_and_die(runtime, "web", "#general", "Lunch is served")
    assert await retry(runtime) == {"found": 1}
    async with runtime.db.pool.acquire() as conn:
        posts = await conn.fetch("SELECT id, content, idempotency_key FROM webchat_posts")
    assert [(p["content"], p["idempotency_key"]) for p in posts] == [("Lunch is served", key)]
    run = await run_of(runtime, schedule_id)
    assert (run.status, run.attempts, run.platform_message_id) == ("sent", 2, str(posts[0]["id"]))


async def test_a_web_alert_notice_retried_finds_its_post(runtime: Runtime) -> None:
    sender = runtime.senders.get("web")
    target = Target("web", "#ops")
    assert await sender.find(target, "alert:7:firing:1:web:#ops") is None
    first = await sender.post(target, Outbound("CPU high", idempotency_key="alert:7:firing:1"))
    again = await sender.find(target, "alert:7:firing:1")
    assert again == first
    assert await sender.post(target, Outbound("CPU high", idempotency_key="alert:7:firing:1")) == (
        first
    )
