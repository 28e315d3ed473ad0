"""Personal data stays with its person: a command that would show someone's memories is not
answered where everyone in the conversation would read it (SPEC §3: memories only in direct
messages). Slack end to end (signed requests, the real app, a fake Web API), and the
conversation service for each platform."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bot.conversation import ConversationService
from bot.embeddings import HashEmbedder
from bot.messages import IncomingMessage
from bot.runtime import Runtime
from bot.settings import Settings
from handlers.http import create_app
from handlers.slack import install
from storage.database import Database
from tests.support import TEST_DIMENSION
from tests.support.factories import add_user
from tests.support.fakes.slack_api import FakeSlack
from tests.support.slack_requests import SIGNING_SECRET, dm_event, mention_event, post_event

SECRET = "my locker code is 4711"


@dataclass
class Workspace:
    client: TestClient
    runtime: Runtime
    slack: FakeSlack
    db: Database

    async def say(self, event: dict[str, object], event_id: str) -> list[str]:
        """What deskmate posted in answer to one message."""
        before = len(self.slack.posted_texts())
        response = await post_event(self.client, event, event_id=event_id)
        assert response.status == 200
        await self.runtime.tasks.join()
        return self.slack.posted_texts()[before:]

    async def memories(self) -> list[str]:
        async with self.db.pool.acquire() as conn:
            rows = await conn.fetch("SELECT content FROM memories WHERE is_active ORDER BY id")
        return [r["content"] for r in rows]


@pytest.fixture
async def workspace(
    settings: Settings, db: Database, fake_slack: FakeSlack
) -> AsyncIterator[Workspace]:
    slack_settings = settings.model_copy(update={
        "slack_bot_token": SecretStr("xoxb-test-token"),
        "slack_signing_secret": SecretStr(SIGNING_SECRET),
        "slack_api_url": fake_slack.url,
    })  # fmt: skip
    await add_user(db, "ana@example.com", ["sales"], slack_id="U-ANA")
    runtime = Runtime(slack_settings)
    await runtime.start()
    async with TestClient(TestServer(create_app(runtime, [install]))) as client:
        space = Workspace(client, runtime, fake_slack, db)
        said = await space.say(dm_event(f"remember {SECRET}"), "Ev-remember")
        assert any("I'll remember" in text for text in said)
        yield space
        await runtime.tasks.join()
    await runtime.stop()


async def test_memories_asked_for_in_a_slack_channel_are_not_posted_there(
    workspace: Workspace,
) -> None:
    said = await workspace.say(mention_event("memories", channel="C-SALES"), "Ev-channel")
    assert said and not any("4711" in text for text in said)
    assert "send me `memories` in a direct message" in said[-1]
    for call in workspace.slack.calls:  # nothing carries it into the channel, blocks included
        if call.body.get("channel") == "C-SALES":
            assert "4711" not in str(call.body)
    in_dm = await workspace.say(dm_event("memories", ts="1700000000.000900"), "Ev-dm")
    assert any(SECRET in text for text in in_dm)


async def test_what_do_you_know_about_me_in_a_slack_channel_is_refused_too(
    workspace: Workspace,
) -> None:
    event = mention_event("what do you know about me?", channel="C-SALES")
    said = await workspace.say(event, "Ev-know")
    assert not any("4711" in text for text in said)
    assert "in a direct message" in said[-1]


async def test_forget_in_a_slack_channel_neither_forgets_nor_quotes_the_memory(
    workspace: Workspace,
) -> None:
    said = await workspace.say(mention_event("forget #1", channel="C-SALES"), "Ev-forget")
    assert not any("4711" in text for text in said)
    assert "send me `forget #1` in a direct message" in said[-1]
    assert await workspace.memories() == [SECRET]


@pytest.mark.parametrize(
    ("platform", "direct", "shown"),
    [
        ("slack", True, True),  # a DM (or the slash command, answered to the asker alone)
        ("slack", False, False),  # a channel mention: posted for everyone
        ("teams", False, True),  # the Teams edge sends it to the person's 1:1 chat
        ("web", False, True),  # the web chat shows it on the asker's page only
    ],
)
async def test_memories_are_shown_only_where_the_asker_alone_reads_them(
    settings: Settings, db: Database, platform: str, direct: bool, shown: bool
) -> None:
    await add_user(db, "ana@example.com", ["sales"], slack_id="U-ANA")
    service = ConversationService(settings, db, HashEmbedder(TEST_DIMENSION))

    def message(text: str, *, is_direct: bool) -> IncomingMessage:
        return IncomingMessage(platform=platform, user_id="U-ANA", conversation_id="C-SALES",
                               text=text, is_direct=is_direct,
                               trusted_email="ana@example.com")  # fmt: skip

    await service.handle(message(f"remember {SECRET}", is_direct=True))
    reply = await service.handle(message("memories", is_direct=direct))
    assert (SECRET in reply.text) is shown and reply.ephemeral
    if not shown:
        assert reply.text.startswith("Your memories are private, so I won't show them here")
