"""Teams end to end: real Activity JSON through `POST /api/messages` of the real aiohttp app,
the Agents SDK talking to a fake Bot Connector, fake Claude behind the conversation service."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from bot.settings import Settings
from tests.support.factories import add_user
from tests.support.fakes.anthropic_server import FakeAnthropic, Text
from tests.support.fakes.bot_connector import (
    AAD_TENANT,
    BOT_ID,
    CHANNEL_ID,
    PERSONAL_CHAT,
    TEAM_ID,
    FakeBotConnector,
    channel_message,
    person,
    personal_message,
    running_connector,
)
from tests.support.teams import Service, quicken_streaming, running_service, with_teams

# The SDK's own JWT middleware stores its result under a plain string key.
pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web.NotAppKeyWarning")


@pytest.fixture(autouse=True)
def quick_streaming(monkeypatch: pytest.MonkeyPatch) -> None:
    quicken_streaming(monkeypatch)


@pytest.fixture
async def connector() -> AsyncIterator[FakeBotConnector]:
    async with running_connector() as fake:
        yield fake


@pytest.fixture
def teams_settings(settings: Settings, fake_anthropic: FakeAnthropic) -> Settings:
    return with_teams(settings, fake_anthropic)


@pytest.fixture
async def service(teams_settings: Settings) -> AsyncIterator[Service]:
    async with running_service(teams_settings) as running:
        yield running


async def test_personal_chat_gets_typing_then_the_streamed_answer(
    service: Service, connector: FakeBotConnector, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.default_text = "The Lyon office opens at 08:00 on weekdays."
    response = await service.post(personal_message(connector.url, "When does Lyon open?"))
    assert response.status == 202
    await service.settle()

    sent = connector.of_kind("send", "reply")
    assert sent, "nothing reached the Bot Connector"
    assert all(c.conversation_id == PERSONAL_CHAT for c in sent)
    assert sent[0].type == "typing"  # the progress line, before any answer text
    final = sent[-1]
    assert final.type == "message"
    assert final.text == "The Lyon office opens at 08:00 on weekdays."
    assert any(e.get("streamType") == "final" for e in final.body.get("entities") or [])
    assert final.activity_id == "1001"  # a reply to the person's message
    feedback = [a for card in final.cards for a in card.get("actions", [])]
    assert [a["data"]["kind"] for a in feedback] == ["feedback", "feedback"]


async def test_channel_mention_is_answered_in_its_thread(
    service: Service, connector: FakeBotConnector, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.default_text = "Discounts above 20% need the VP's approval."
    activity = channel_message(connector.url, "who approves discounts?", activity_id="3002",
                               root="3001")  # fmt: skip
    assert (await service.post(activity)).status == 202
    await service.settle()

    [answer] = connector.messages
    assert answer.conversation_id == f"{CHANNEL_ID};messageid=3001"
    assert answer.activity_id == "3002"
    assert answer.text == "Discounts above 20% need the VP's approval."
    assert connector.of_kind("send", "reply")[0].type != "typing"  # no typing in channels
    question = fake_anthropic.prompt_text()
    assert "who approves discounts?" in question and "<at>" not in question


async def test_a_new_channel_post_starts_its_own_thread(
    service: Service, connector: FakeBotConnector
) -> None:
    await service.post(channel_message(connector.url, "office hours?", activity_id="4001"))
    await service.settle()
    [answer] = connector.messages
    assert answer.conversation_id == f"{CHANNEL_ID};messageid=4001"


async def test_a_group_chat_mention_gets_typing_then_the_answer(
    service: Service, connector: FakeBotConnector
) -> None:
    group = channel_message(connector.url, "what's new?", activity_id="8001")
    group["conversation"] = {"isGroup": True, "conversationType": "groupChat",
                             "tenantId": AAD_TENANT, "id": "19:group-chat@thread.v2"}  # fmt: skip
    group["channelData"] = {"tenant": {"id": AAD_TENANT}}
    await service.post(group)
    await service.settle()
    sent = connector.of_kind("send", "reply")
    assert (sent[0].type, sent[-1].type) == ("typing", "message")
    assert {c.conversation_id for c in sent} == {"19:group-chat@thread.v2"}
    assert sent[-1].activity_id == "8001"


async def test_nothing_is_sent_for_the_bots_own_message_or_an_unmentioned_one(
    service: Service, connector: FakeBotConnector
) -> None:
    own = personal_message(
        connector.url, "an answer I wrote", sender={"id": "28:deskmate-app", "name": "deskmate"}
    )
    assert (await service.post(own)).status == 202
    plain = channel_message(connector.url, "chatting among ourselves", mention=False)
    assert (await service.post(plain)).status == 202
    await service.settle()
    assert connector.calls == []
    assert await service.count("session_messages") == 0


async def test_being_added_to_a_team_is_remembered_silently(
    service: Service, connector: FakeBotConnector
) -> None:
    added = {
        **channel_message(connector.url, "", activity_id="f:added"), "type": "conversationUpdate",
        "membersAdded": [{"id": BOT_ID}], "text": None, "entities": None,
        "conversation": {"isGroup": True, "conversationType": "channel", "id": CHANNEL_ID,
                         "tenantId": AAD_TENANT},
    }  # fmt: skip
    assert (await service.post(added)).status == 202
    await service.settle()
    assert connector.calls == []
    async with service.runtime.db.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT conversation_id, team_id FROM teams_conversations")
    assert (row["conversation_id"], row["team_id"]) == (CHANNEL_ID, TEAM_ID)


async def test_a_redelivered_message_is_answered_once(
    service: Service, connector: FakeBotConnector
) -> None:
    activity = personal_message(connector.url, "hello?", activity_id="5001")
    await service.post(activity)
    await service.post(activity)
    await service.settle()
    assert len(connector.messages) == 1


async def test_the_http_answer_leaves_before_a_slow_model_finishes(
    service: Service, connector: FakeBotConnector, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script = [Text("Slow but sure.", delay=2.0)]
    started = time.perf_counter()
    response = await service.post(personal_message(connector.url, "take your time"))
    answered_after = time.perf_counter() - started
    assert response.status == 202
    assert answered_after < 1.0, f"/api/messages took {answered_after:.2f}s"
    assert not connector.messages  # the answer is still being written
    await service.settle()
    assert connector.messages[-1].text == "Slow but sure."
    assert time.perf_counter() - started >= 2.0


async def test_an_unknown_person_is_matched_by_upn(
    service: Service, connector: FakeBotConnector
) -> None:
    user_id = await add_user(service.runtime.db, "sam@example.com", ["sales"])
    connector.members["29:sam"] = {"id": "29:sam", "name": "Sam Seller", "aadObjectId": "aad-sam",
                                   "userPrincipalName": "Sam@Example.com"}  # fmt: skip
    await service.post(personal_message(connector.url, "hi", sender=person()))
    await service.settle()
    async with service.runtime.db.pool.acquire() as conn:
        linked = await conn.fetchrow(
            "SELECT user_id, workspace_id FROM platform_identities "
            "WHERE platform = 'teams' AND platform_user_id = 'aad-sam'"
        )
    assert linked is not None and linked["user_id"] == user_id
    assert linked["workspace_id"] == AAD_TENANT
    # Known now: the next message needs no member lookup.
    await service.post(personal_message(connector.url, "again", activity_id="1002"))
    await service.settle()
    assert len(connector.of_kind("member")) == 1


async def test_a_malformed_activity_gets_a_4xx_and_stores_nothing(service: Service) -> None:
    response = await service.client.post(
        "/api/messages", data="{not json", headers={"Content-Type": "application/json"}
    )
    assert 400 <= response.status < 500
    async with service.runtime.db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM session_messages") == 0
