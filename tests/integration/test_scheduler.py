"""Scheduled deliveries on the real database through a real SlackSender and a fake Slack:
one-off, recurring catch-up, pause, failures and retries, crash recovery, prompts, the loop."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from bot.cron import idempotency_key
from bot.directory import PLATFORMS
from bot.embeddings import HashEmbedder
from bot.errors import UsageError
from bot.outbound import Outbound, Target
from bot.runtime import Runtime
from bot.schedules import ScheduleRequest, Schedules, ensure_demo_digest
from bot.settings import Settings
from deskmate.process import Process
from handlers.slack.sender import ChannelPacer, SlackSender, slack_client
from scheduler.loop import Scheduler, materialise
from storage import jobs, schedules, users
from storage.database import Database
from tests.support import TEST_DIMENSION
from tests.support.factories import add_document, add_user, clear_channel
from tests.support.fakes.slack_api import start_fake_slack
from tests.support.history_slack import HistorySlack

SALES_RULE = "Discounts above 20 percent need approval from the VP Sales, Mara Lindqvist"
HR_SECRET = "Salary bands: level L5 engineers earn between 78,000 and 96,000 EUR"


@pytest.fixture
async def slack() -> AsyncIterator[HistorySlack]:
    fake = HistorySlack()
    runner = await start_fake_slack(fake)
    yield fake
    await runner.cleanup()


def scheduler_settings(settings: Settings, slack: HistorySlack, **extra: object) -> Settings:
    return settings.model_copy(update={
        "scheduler_enabled": False, "slack_api_url": slack.url, "scheduler_max_attempts": 3,
        "scheduler_retry_base_seconds": 0.0, "scheduler_retry_max_seconds": 0.0, **extra,
    })  # fmt: skip


@pytest.fixture
async def runtime(settings: Settings, slack: HistorySlack) -> AsyncIterator[Runtime]:
    rt = Runtime(scheduler_settings(settings, slack))
    await rt.start()
    rt.senders.register(SlackSender(slack_client(rt.settings, "xoxb-test"), ChannelPacer(0.0)))
    yield rt
    await rt.tasks.join()
    await rt.stop()


@pytest.fixture
def scheduler(runtime: Runtime) -> Scheduler:
    """The loop's parts, driven by hand: `materialise` and `worker.drain`, no timers."""
    return Scheduler(runtime, replica="test-replica")


@pytest.fixture
def manager(runtime: Runtime) -> Schedules:
    """Schedules as a process whose settings turn every platform on makes them."""
    return Schedules(runtime.db, actor="test", platforms=PLATFORMS)


async def add(manager: Schedules, due: bool = True, **fields: object) -> int:
    """A schedule, made due now (its first slot moved into the past) unless `due=False`."""
    if "cron" not in fields:
        fields.setdefault("at", "2099-01-01T09:00")
    request = ScheduleRequest(**{"platform": "slack", "channel": "C1", **fields})  # type: ignore[arg-type]
    schedule = await manager.add("default", request)
    if due:
        async with manager.db.pool.acquire() as conn:
            await conn.execute(
                """
                UPDATE scheduled_messages SET next_run_at = now() - interval '1 minute',
                       run_at = CASE WHEN cron IS NULL THEN now() - interval '1 minute' END
                WHERE id = $1
                """,
                schedule.id,
            )
    return schedule.id


async def cycle(scheduler: Scheduler) -> dict[str, int]:
    await materialise(scheduler.runtime.db)
    return dict(await scheduler.worker.drain())


async def runs(db: Database, schedule_id: int) -> list[jobs.Run]:
    async with db.pool.acquire() as conn:
        return await jobs.runs_of(conn, 1, schedule_id)


async def status(db: Database, schedule_id: int) -> tuple[str, str | None]:
    async with db.pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT status, last_error FROM scheduled_messages WHERE id = $1", schedule_id
        )
    return row["status"], row["last_error"]


async def test_one_off_is_posted_once_with_its_key_and_completes(
    scheduler: Scheduler, manager: Schedules, slack: HistorySlack, runtime: Runtime
) -> None:
    schedule_id = await add(manager, text="Stand-up in 5 minutes")
    assert await cycle(scheduler) == {"sent": 1}
    assert await cycle(scheduler) == {}
    [run] = await runs(runtime.db, schedule_id)
    [post] = slack.called("chat.postMessage")
    key = idempotency_key(schedule_id, run.slot)
    assert (post.body["channel"], post.body["text"]) == ("C1", "Stand-up in 5 minutes")
    assert post.body["metadata"]["event_payload"] == {"key": key}
    assert (run.status, run.attempts, run.platform_message_id) == ("sent", 1, slack.ts_of(key)[0])
    assert await status(runtime.db, schedule_id) == ("completed", None)


async def test_recurring_schedule_down_for_days_sends_one_catch_up_run(
    scheduler: Scheduler, manager: Schedules, slack: HistorySlack, runtime: Runtime
) -> None:
    schedule_id = await add(manager, due=False, text="Daily", cron="*/5 * * * *", timezone="UTC")
    async with runtime.db.pool.acquire() as conn:
        await conn.execute("UPDATE scheduled_messages SET next_run_at = now() - interval '3 days' "
                           "WHERE id = $1", schedule_id)  # fmt: skip
        now = await conn.fetchval("SELECT now()")
    assert await cycle(scheduler) == {"sent": 1}
    [run] = await runs(runtime.db, schedule_id)
    assert now - dt.timedelta(minutes=5) < run.slot <= now  # the latest missed slot
    async with runtime.db.pool.acquire() as conn:
        following = await conn.fetchval(
            "SELECT next_run_at FROM scheduled_messages WHERE id = $1", schedule_id
        )
    assert following == run.slot + dt.timedelta(minutes=5)
    assert await status(runtime.db, schedule_id) == ("active", None)


async def test_paused_schedule_sends_nothing_until_run_now_or_resume(
    scheduler: Scheduler, manager: Schedules, slack: HistorySlack, runtime: Runtime
) -> None:
    schedule_id = await add(manager, text="Weekly", cron="0 9 * * 1", timezone="Europe/Berlin")
    await materialise(runtime.db)  # a run is waiting …
    paused = await manager.pause("default", schedule_id)
    assert (paused.status, paused.next_run_at) == ("paused", None)
    assert await cycle(scheduler) == {}  # … and is dropped with the pause
    assert slack.called("chat.postMessage") == [] and await runs(runtime.db, schedule_id) == []
    await manager.run_now("default", schedule_id)
    assert await cycle(scheduler) == {"sent": 1}  # run-now works while paused
    resumed = await manager.resume("default", schedule_id)
    assert resumed.status == "active" and resumed.next_run_at > dt.datetime.now(dt.UTC)
    assert await cycle(scheduler) == {}
    async with runtime.db.pool.acquire() as conn:
        actions = await conn.fetch("SELECT action FROM audit_log WHERE target_type = 'schedule' "
                                   "AND target_id = $1 ORDER BY id", str(schedule_id))  # fmt: skip
    assert [a["action"] for a in actions] == [
        "schedule.add", "schedule.pause", "schedule.run_now", "schedule.resume",
    ]  # fmt: skip


async def test_failing_target_ends_failed_with_the_reason_after_max_attempts(
    scheduler: Scheduler, manager: Schedules, slack: HistorySlack, runtime: Runtime
) -> None:
    slack.fail("chat.postMessage", "internal_error", times=10)
    schedule_id = await add(manager, text="Never arrives")
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    assert await cycle(scheduler) == {"retry": 2, "failed": 1}
    [run] = await runs(runtime.db, schedule_id)
    reason = "Slack refused the message: internal_error"
    assert (run.status, run.attempts, run.error) == ("failed", 3, reason)
    assert run.failed_at is not None and run.platform_message_id is None
    assert len(slack.called("chat.postMessage")) == 3
    assert await status(runtime.db, schedule_id) == ("failed", reason)
    async with runtime.db.pool.acquire() as conn:  # what the delivery_failures metric reads
        assert await jobs.delivery_failures(conn, 1, since) == 1


async def test_permanent_error_fails_at_once_and_stops_a_recurring_schedule(
    scheduler: Scheduler, manager: Schedules, slack: HistorySlack, runtime: Runtime
) -> None:
    slack.fail("chat.postMessage", "channel_not_found")
    schedule_id = await add(manager, text="Gone", cron="0 9 * * *")
    assert await cycle(scheduler) == {"failed": 1}
    [run] = await runs(runtime.db, schedule_id)
    assert (run.attempts, run.error) == (1, "Slack refused the message: channel_not_found")
    assert await status(runtime.db, schedule_id) == ("failed", run.error)


async def test_rate_limited_post_is_retried_and_posted_once(
    scheduler: Scheduler, manager: Schedules, slack: HistorySlack, runtime: Runtime
) -> None:
    # The SDK waits out two 429s itself; the third becomes a retryable DeliveryError.
    slack.rate_limit("chat.postMessage", times=3, retry_after=0)
    schedule_id = await add(manager, text="Busy channel")
    assert await cycle(scheduler) == {"retry": 1, "sent": 1}
    [run] = await runs(runtime.db, schedule_id)
    assert (run.status, run.attempts) == ("sent", 2)
    assert len(slack.channels["C1"]) == 1


async def test_crash_between_post_and_commit_is_found_not_posted_again(
    scheduler: Scheduler, manager: Schedules, slack: HistorySlack, runtime: Runtime
) -> None:
    schedule_id = await add(manager, text="Exactly once")
    await materialise(runtime.db)
    async with runtime.db.pool.acquire() as conn:  # a replica claims, posts, and dies
        [claim] = await jobs.claim(conn, "doomed", ["slack"], 10, 0.2)
    key = idempotency_key(schedule_id, claim.slot)
    delivery = await runtime.senders.get("slack").post(
        Target("slack", "C1"), Outbound("Exactly once", idempotency_key=key)
    )
    await asyncio.sleep(0.3)  # its lease expires
    assert await cycle(scheduler) == {"found": 1}
    [run] = await runs(runtime.db, schedule_id)
    assert (run.status, run.attempts, run.claimed_by) == ("sent", 2, "test-replica")
    assert run.platform_message_id == delivery.message_id
    assert slack.posts_by_key() == {key: 1}


async def test_run_abandoned_too_often_fails_without_posting(
    scheduler: Scheduler, manager: Schedules, slack: HistorySlack, runtime: Runtime
) -> None:
    schedule_id = await add(manager, text="Cursed")
    await materialise(runtime.db)
    async with runtime.db.pool.acquire() as conn:
        await conn.execute("UPDATE scheduled_runs SET attempts = 3, status = 'claimed', "
                           "available_at = now() - interval '1 second'")  # fmt: skip
    assert await cycle(scheduler) == {"failed": 1}
    [run] = await runs(runtime.db, schedule_id)
    assert run.error == "gave up after 3 attempts: its deliverer stopped"
    assert slack.called("chat.postMessage") == []


async def test_runs_wait_for_a_replica_that_can_post_to_their_platform(
    scheduler: Scheduler, manager: Schedules, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    schedule_id = await add(manager, platform="teams", channel="19:abc@thread.v2", text="Hi")
    assert await cycle(scheduler) == {}
    [run] = await runs(runtime.db, schedule_id)
    assert (run.status, run.attempts) == ("pending", 0)
    # Another replica may have Teams: a run only just due is not worth a warning …
    assert await scheduler.worker.warn_waiting() == 0
    async with runtime.db.pool.acquire() as conn:
        await conn.execute("UPDATE scheduled_runs SET available_at = now() - interval '5 minutes'")
    # … one that has waited is, once, however many ticks look at it.
    with caplog.at_level("WARNING", logger="deskmate.scheduler"):
        assert await scheduler.tick() == {"runs_waiting_for_platform": 1}
        assert await scheduler.tick() == {}
    [warning] = [r.getMessage() for r in caplog.records if "is waiting" in r.getMessage()]
    assert warning.startswith(f"run {run.id} of schedule {schedule_id} (teams:19:abc@thread.v2")
    assert "teams is not configured in this process" in warning


async def test_a_schedule_on_a_platform_that_is_off_or_for_an_unknown_department_is_refused(
    runtime: Runtime,
) -> None:
    from bot.schedules import platforms_on

    on = platforms_on(runtime.settings)  # no Slack or Teams credentials in these settings
    assert on == ("web",)
    manager = Schedules(runtime.db, actor="test", platforms=on)
    weekly = ScheduleRequest("teams", "19:abc@thread.v2", text="Hi", cron="0 9 * * 1")
    with pytest.raises(UsageError, match=r"^teams is not configured in this deskmate, so "
                       r"nothing would deliver this schedule: set CONNECTIONS__"):  # fmt: skip
        await manager.add("default", weekly)
    with pytest.raises(UsageError, match=r"^slack is not configured .*: set SLACK_BOT_TOKEN"):
        await manager.add("default", replace(weekly, platform="slack", channel="C1"))
    digest = replace(weekly, platform="web", channel="#sales", text=None,
                     digest="department:slaes")  # fmt: skip
    with pytest.raises(UsageError, match=r"^unknown department 'slaes': no document, person or "
                       r"channel belongs to it$"):  # fmt: skip
        await manager.add("default", digest)
    async with runtime.db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM scheduled_messages") == 0
    await add_user(runtime.db, "sam@example.com", ["sales"])
    await clear_channel(runtime.db, "web", "#sales", "sales")
    made = await manager.add("default", replace(digest, digest="department:sales"))
    assert (made.platform, made.payload) == ("web", {"scope": "department", "name": "sales"})


async def test_the_chat_schedule_command_refuses_them_too(runtime: Runtime) -> None:
    from bot.schedule_commands import run_schedule_command

    await add_user(runtime.db, "sam@example.com", ["sales"], super_user=True)
    async with runtime.db.pool.acquire() as conn:
        sam = await users.get_by_email(conn, 1, "sam@example.com")
    assert sam is not None
    chat = Schedules(runtime.db, actor="chat", platforms=("web",))

    async def typed(arguments: str, platform: str, channel: str) -> str:
        return await run_schedule_command(chat, arguments, tenant="default", platform=platform,
                                          channel=channel, requester=sam)  # fmt: skip

    with pytest.raises(UsageError, match=r"^unknown department 'nope'"):
        await typed('add --cron "0 9 * * 1" --digest department:nope', "web", "#general")
    with pytest.raises(UsageError, match=r"^slack is not configured in this deskmate"):
        await typed('add --cron "0 9 * * 1" --text "Stand-up"', "slack", "C1")
    made = await typed('add --cron "0 9 * * 1" --text "Stand-up"', "web", "#general")
    assert made.startswith("Scheduled #1: text “Stand-up”")


async def test_prompt_is_answered_as_its_creator_with_the_channels_clearance(
    scheduler: Scheduler, manager: Schedules, slack: HistorySlack, runtime: Runtime
) -> None:
    embedder = HashEmbedder(TEST_DIMENSION)
    await add_document(runtime.db, embedder, "sales", "Discount policy", {"Approvals": SALES_RULE})
    await add_document(runtime.db, embedder, "hr", "Salary bands", {"Engineering": HR_SECRET})
    await clear_channel(runtime.db, "slack", "C-SALES", "sales")
    await add_user(runtime.db, "sam@example.com", ["sales", "hr"])
    question = "Who approves discounts above 20 percent and salary bands?"
    schedule_id = await add(manager, channel="C-SALES", run_as="sam@example.com", prompt=question)
    assert await cycle(scheduler) == {"sent": 1}
    [post] = slack.called("chat.postMessage")
    blocks = str(post.body["blocks"])
    assert "Mara Lindqvist" in blocks and "Discount policy" in blocks  # quoted, with its source
    assert "78,000" not in blocks  # HR is not cleared for this channel
    async with runtime.db.pool.acquire() as conn:
        content = await conn.fetchval("SELECT content FROM scheduled_runs WHERE schedule_id = $1",
                                      schedule_id)  # fmt: skip
        asked = await conn.fetchval("SELECT count(*) FROM query_log WHERE channel_id = 'C-SALES'")
    assert content["sources"][0]["title"] == "Discount policy" and asked == 1


async def test_prompt_of_a_disabled_creator_fails_with_the_reason(
    scheduler: Scheduler, manager: Schedules, runtime: Runtime
) -> None:
    await add_user(runtime.db, "gil@example.com", ["sales"])
    schedule_id = await add(manager, run_as="gil@example.com", prompt="Any news?")
    async with runtime.db.pool.acquire() as conn:
        await conn.execute("UPDATE users SET is_active = false WHERE email = 'gil@example.com'")
    assert await cycle(scheduler) == {"failed": 1}
    assert await status(runtime.db, schedule_id) == (
        "failed", "the schedule acts as gil@example.com, who is not an active user",
    )  # fmt: skip


async def test_the_loop_in_the_process_delivers_records_job_runs_and_stops_quickly(
    settings: Settings, slack: HistorySlack
) -> None:
    process = Process(scheduler_settings(settings, slack, scheduler_enabled=True,
                                         scheduler_tick_seconds=0.1))  # fmt: skip
    rt = process.runtime
    await process.start()
    rt.senders.register(SlackSender(slack_client(rt.settings, "xoxb-test")))
    try:
        assert process.scheduler is not None
        schedule_id = await add(
            Schedules(rt.db, actor="test", platforms=PLATFORMS), text="From the loop"
        )
        deadline = time.monotonic() + 10
        while not slack.channels["C1"] and time.monotonic() < deadline:  # noqa: ASYNC110 - polls another server's state
            await asyncio.sleep(0.05)
        assert [m["text"] for m in slack.channels["C1"]] == ["From the loop"]
    finally:
        started = time.monotonic()
        await process.stop()
    assert time.monotonic() - started < 5
    db = Database(settings.database)
    await db.start(migrate=False)
    try:
        [run] = await runs(db, schedule_id)
        async with db.pool.acquire() as conn:
            recorded = await conn.fetch("SELECT job, status, details FROM job_runs ORDER BY id")
    finally:
        await db.stop()
    assert run.status == "sent"
    assert ("scheduler.tick", "succeeded", {"runs_created": 1}) in [tuple(r) for r in recorded]
    assert ("scheduler.deliver", "succeeded", {"sent": 1}) in [tuple(r) for r in recorded]


async def test_a_schedule_whose_slot_cannot_be_computed_fails_alone(
    scheduler: Scheduler, manager: Schedules, runtime: Runtime
) -> None:
    broken = await add(manager, text="Broken", cron="0 9 * * *")
    fine = await add(manager, text="Fine")
    async with runtime.db.pool.acquire() as conn:
        await conn.execute("UPDATE scheduled_messages SET timezone = 'Mars/Olympus' WHERE id = $1",
                           broken)  # fmt: skip
    assert await cycle(scheduler) == {"sent": 1}
    assert await status(runtime.db, broken) == (
        "failed", "cannot compute its next slot: unknown time zone 'Mars/Olympus' (use an IANA "
        "name like Europe/Berlin)",
    )  # fmt: skip
    assert await status(runtime.db, fine) == ("completed", None)


async def test_the_demo_digest_is_created_once(runtime: Runtime) -> None:
    first = await ensure_demo_digest(runtime.db)
    again = await ensure_demo_digest(runtime.db)
    assert again.id == first.id
    assert (first.platform, first.channel, first.kind, first.payload, first.cron) == (
        "web", "#general", "digest", {"scope": "department", "name": "general"}, "0 17 * * 1-5",
    )  # fmt: skip


async def test_from_chat_a_schedule_acts_as_its_requester_who_alone_may_change_it(
    manager: Schedules, runtime: Runtime
) -> None:
    await clear_channel(runtime.db, "slack", "C-SALES", "sales")
    await add_user(runtime.db, "sam@example.com", ["sales"])
    await add_user(runtime.db, "bo@example.com", ["sales"])
    async with runtime.db.pool.acquire() as conn:
        sam = await users.get_by_email(conn, 1, "sam@example.com")
        bo = await users.get_by_email(conn, 1, "bo@example.com")
    assert sam is not None and bo is not None
    weekly = ScheduleRequest("slack", "C-SALES", prompt="What changed?", cron="0 9 * * 1")
    schedule = await manager.add("default", weekly, requester=sam)
    assert (schedule.created_by, schedule.timezone) == ("sam@example.com", "UTC")
    with pytest.raises(UsageError, match=r"schedule 1 belongs to sam@example\.com"):
        await manager.pause("default", schedule.id, requester=bo)
    with pytest.raises(UsageError, match="only the head of sales or a super user"):
        digest = ScheduleRequest("slack", "C-SALES", cron="0 9 * * 1", digest="department:sales")
        await manager.add("default", digest, requester=sam)
    with pytest.raises(UsageError, match="only a super user may schedule messages as someone"):
        await manager.add("default", replace(weekly, run_as="bo@example.com"), requester=sam)


async def test_a_channel_takes_one_claimed_post_per_pace_and_a_late_post_waits_its_turn(
    manager: Schedules, runtime: Runtime
) -> None:
    for channel in ("C1", "C1", "C2"):
        await add(manager, text=f"to {channel}", channel=channel)
    await materialise(runtime.db)
    pace = {"slack": 1.0}
    async with runtime.db.pool.acquire() as conn:
        first = await schedules.claim_paced(conn, "a", pace, 10, 60)
        # Another replica at the same moment: both channels are taken for a second.
        assert await schedules.claim_paced(conn, "b", pace, 10, 60) == []
        wait = await schedules.next_claimable_in(conn, ["slack"])
        assert sorted(c.claim.channel for c in first) == ["C1", "C2"]
        assert wait is not None and 0.9 < wait <= 1.05
        # A post that left late (its prompt took a while) while nobody else took the channel
        # goes at once; a second post on the same reservation waits for the pace.
        c1 = next(c for c in first if c.claim.channel == "C1")
        assert await schedules.reserve(conn, c1, 1.0) == 0.0
        assert 0.9 < await schedules.reserve(conn, c1, 1.0) <= 1.05
