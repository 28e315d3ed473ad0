"""A message resumed by the sweeper (its replica died mid-answer) ends with exactly one complete
answer in the person's thread: an answer Slack already showed is not given again, and what a
broken-off attempt left on screen is replaced (SPEC §4, §7: nothing answered twice)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.messages import IncomingMessage, Reply
from bot.settings import Settings
from handlers.slack.events import SlackMessage
from handlers.slack.interactions import SlackInteractions
from handlers.slack.reply import ANSWER_EVENT, edit_answer, stream_answer
from storage.database import Database
from tests.support.factories import add_user
from tests.support.fakes.anthropic_server import FakeAnthropic
from tests.support.fakes.slack_api import FakeSlack, start_fake_slack
from tests.support.slack_requests import (
    TEAM,
    SlackService,
    dm_event,
    mention_event,
    post_event,
    running_slack,
)

pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web.NotAppKeyWarning")

QUESTION = "where is the travel policy?"
DM = SlackMessage(TEAM, "D1", "U-ANA", QUESTION, "1700000000.000100", None, is_direct=True)
MENTION = SlackMessage(TEAM, "C1", "U-ANA", QUESTION, "1700000000.000200", None, is_direct=False)
EVENTS = {"dm": (DM, dm_event(QUESTION)), "channel": (MENTION, mention_event(QUESTION))}
# What a first attempt may call in Slack; a look at the thread is not among them.
FIRST_ATTEMPT_CALLS = {"users.info", "assistant.threads.setStatus", "chat.startStream",
                       "chat.appendStream", "chat.stopStream", "chat.postMessage",
                       "chat.update"}  # fmt: skip


@pytest.fixture
async def slack_with_history() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack(keep_history=True)
    runner = await start_fake_slack(fake)
    yield fake
    await runner.cleanup()


@pytest.fixture
async def service(
    settings: Settings, db: Database, slack_with_history: FakeSlack, fake_anthropic: FakeAnthropic
) -> AsyncIterator[SlackService]:
    await add_user(db, "ana@example.com", ["sales"], slack_id="U-ANA")
    async with running_slack(settings, slack_with_history, fake_anthropic) as running:
        yield running


async def died_before_recording(db: Database) -> None:
    """The replica was killed after Slack showed what it showed, before the end was recorded;
    its lease has run out since."""
    async with db.pool.acquire() as conn:
        await conn.execute("UPDATE processed_events SET status = 'processing', "
                           "updated_at = now() - interval '1 hour'")  # fmt: skip


async def statuses(db: Database) -> list[tuple[str, int]]:
    async with db.pool.acquire() as conn:
        rows = await conn.fetch("SELECT status, attempts FROM processed_events")
    return [(r["status"], r["attempts"]) for r in rows]


def shown_in_thread(slack: FakeSlack, message: SlackMessage) -> list[dict[str, Any]]:
    """deskmate's messages the person sees in the thread of their message."""
    return [m for m in slack.history.get(message.channel, [])
            if m.get("bot_id") and m.get("thread_ts") == message.reply_thread]  # fmt: skip


def state_of(shown: dict[str, Any]) -> str | None:
    metadata = shown.get("metadata") or {}
    if metadata.get("event_type") != ANSWER_EVENT:
        return None
    return str(metadata["event_payload"]["state"])


async def resume(service: SlackService) -> None:
    assert await service.runtime.events.sweep(service.runtime.tasks.spawn) == 1
    await service.settle()


@pytest.mark.parametrize("where", ["dm", "channel"])
async def test_an_answer_already_shown_is_not_given_again_when_its_message_is_resumed(
    service: SlackService, where: str
) -> None:
    message, event = EVENTS[where]
    # Busy threads: the answer is past the first page of conversations.replies.
    service.slack.chatter(message.channel, 250, thread=message.reply_thread)
    await post_event(service.client, event)
    await service.settle()
    assert len(service.claude.answer_requests) == 1
    await died_before_recording(service.db)

    await resume(service)

    assert len(service.claude.answer_requests) == 1  # not asked, not answered again
    shown = shown_in_thread(service.slack, message)
    assert [state_of(m) for m in shown] == ["final"]
    assert "Here is the answer" in shown[0]["text"]
    assert len(service.slack.called("conversations.replies")) == 2  # it read both pages
    assert await statuses(service.db) == [("done", 2)]


class Killed(Exception):
    """The replica's end, as far as this test's stand-in for it is concerned."""


async def die_mid_answer(*args: Any, **kwargs: Any) -> None:
    """The replica is killed right after the ack; what it showed is played below."""


async def broken_off_answer(incoming: IncomingMessage, on_delta: Any) -> Reply:
    """An answer that shows its first words (past the stream's buffer) and then dies."""
    await on_delta("Here is what I found so far, " * 12)
    raise Killed("kill -9")


async def show_a_stub(slack: FakeSlack, message: SlackMessage) -> None:
    """What the killed replica showed, through deskmate's own answering code."""
    client = AsyncWebClient(token="xoxb-test-token", base_url=slack.url)
    incoming = IncomingMessage("slack", message.user, message.channel, QUESTION,
                               message.is_direct)  # fmt: skip
    answering = stream_answer if message.is_direct else edit_answer
    with pytest.raises(Killed):
        await answering(client, message, incoming, broken_off_answer)


@pytest.mark.parametrize("where", ["dm", "channel"])
async def test_a_stub_left_by_a_killed_replica_becomes_one_complete_answer(
    service: SlackService, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    message, event = EVENTS[where]
    with monkeypatch.context() as dying:
        dying.setattr(SlackInteractions, "answer", die_mid_answer)
        await post_event(service.client, event)
    await show_a_stub(service.slack, message)
    [stub] = shown_in_thread(service.slack, message)
    assert "found so far" in stub["text"]
    await died_before_recording(service.db)

    await resume(service)

    shown = shown_in_thread(service.slack, message)
    assert [state_of(m) for m in shown] == ["final"]  # the stub is gone; one answer is there
    assert "Here is the answer" in shown[0]["text"]
    assert "found so far" not in shown[0]["text"]
    assert len(service.claude.answer_requests) == 1
    assert await statuses(service.db) == [("done", 2)]


@pytest.mark.parametrize("where", ["dm", "channel"])
async def test_a_first_attempt_costs_no_extra_slack_call(service: SlackService, where: str) -> None:
    message, event = EVENTS[where]
    await post_event(service.client, event)
    await service.settle()

    methods = {call.method for call in service.slack.calls} - {"auth.test"}
    assert methods <= FIRST_ATTEMPT_CALLS
    shown = shown_in_thread(service.slack, message)
    assert [state_of(m) for m in shown] == ["final"]  # the mark rides on the answer itself
    assert await statuses(service.db) == [("done", 1)]
