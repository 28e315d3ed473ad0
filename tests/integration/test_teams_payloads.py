"""Real Teams activities, replayed: each sample in tests/payloads/teams/ is posted with a valid
Bot Framework token to the real app, which talks to the fake Bot Connector. The answerable ones
are answered exactly once; everything else gets its 2xx and leaves no person, no session and
no answer behind.

Where the samples come from (ids, names and texts as published, service URLs replaced at replay):
- conversation_update_*, message_reaction_*, installation_update_*: the JSON examples of
  Microsoft's "Conversation events in your Teams bot" (MicrosoftDocs/msteams-docs,
  msteams-platform/bots/how-to/conversations/subscribe-to-conversation-events.md);
- message_*: the shapes of Microsoft's "Channel and group chat conversations" and "Messages in
  bot conversations" pages (mention entities, `;messageid=` thread ids, the text/html copy);
- message_personal_expect_replies: microsoft/Agents-for-python,
  dev/microsoft-agents-testing/payload.json (its snake_case `delivery_mode` kept);
- message_update_edit, message_delete_soft, event_meeting_start, invoke_*: the activities the
  Agents SDK's Teams extension tests route (tests/hosting_teams, tests/hosting_msteams), with the
  Universal Actions `adaptiveCard/action` value as the Teams docs describe it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.settings import Settings
from tests.support.fakes.anthropic_server import FakeAnthropic
from tests.support.fakes.bot_connector import FakeBotConnector, running_connector
from tests.support.teams import (
    FakeBotFrameworkKeys,
    Service,
    bot_framework_keys,
    quicken_streaming,
    running_service,
    secured,
)

pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web.NotAppKeyWarning")

PAYLOADS = Path(__file__).resolve().parents[1] / "payloads" / "teams"

ANSWERED = "answered"  # 202, then exactly one answer posted to the conversation
IN_RESPONSE = "in the response"  # 200 with the answer in the body, nothing posted
INVOKE = "invoke"  # 200 with an invoke answer, nothing posted, no session
QUIET = "quiet"  # 202, nothing posted, nothing stored about a person

EXPECTED = {
    "conversation_update_bot_added_to_personal_chat": QUIET,
    "conversation_update_bot_added_to_team": QUIET,
    "conversation_update_channel_created": QUIET,
    "conversation_update_channel_deleted": QUIET,
    "conversation_update_channel_renamed": QUIET,
    "conversation_update_members_removed": QUIET,
    "conversation_update_team_archived": QUIET,
    "conversation_update_team_renamed": QUIET,
    "end_of_conversation": QUIET,
    "event_meeting_start": QUIET,
    "installation_update_add": QUIET,
    "installation_update_add_upgrade": QUIET,
    "installation_update_remove": QUIET,
    "invoke_card_action_refresh": INVOKE,
    "invoke_card_action_with_verb": INVOKE,
    "invoke_card_action_without_verb": INVOKE,
    "invoke_message_extension_query": INVOKE,
    "invoke_task_fetch": INVOKE,
    "message_action_submit_without_our_data": QUIET,
    "message_channel_mention": ANSWERED,
    "message_channel_thread_reply_mention": ANSWERED,
    "message_channel_without_mention": QUIET,
    "message_delete_soft": QUIET,
    "message_from_another_bot_in_group_chat": QUIET,
    "message_group_chat_mention": ANSWERED,
    "message_personal": ANSWERED,
    "message_personal_expect_replies": IN_RESPONSE,
    "message_personal_html": ANSWERED,
    "message_reaction_added": QUIET,
    "message_reaction_removed": QUIET,
    "message_update_edit": QUIET,
    "typing": QUIET,
}


def test_every_sample_has_an_expectation() -> None:
    assert sorted(p.stem for p in PAYLOADS.glob("*.json")) == sorted(EXPECTED)
    assert len(EXPECTED) >= 20


@pytest.fixture(autouse=True)
def quick_streaming(monkeypatch: pytest.MonkeyPatch) -> None:
    quicken_streaming(monkeypatch)


@pytest.fixture
async def connector() -> AsyncIterator[FakeBotConnector]:
    async with running_connector() as fake:
        yield fake


@pytest.fixture
async def service(
    settings: Settings, fake_anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Service, FakeBotFrameworkKeys]]:
    teams = secured(settings, fake_anthropic)
    async with bot_framework_keys(monkeypatch) as keys, running_service(teams) as running:
        yield running, keys


def sample(name: str, service_url: str) -> dict[str, Any]:
    payload = json.loads((PAYLOADS / f"{name}.json").read_text())
    payload["serviceUrl"] = service_url
    return payload


async def stored(service: Service, sql: str) -> int:
    async with service.runtime.db.pool.acquire() as conn:
        return int(await conn.fetchval(sql))


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_a_real_activity_is_answered_only_when_it_asks_something(
    service: tuple[Service, FakeBotFrameworkKeys], connector: FakeBotConnector,
    fake_anthropic: FakeAnthropic, name: str,
) -> None:  # fmt: skip
    app, keys = service
    fake_anthropic.default_text = "Here is what the documents say."
    expected = EXPECTED[name]
    response = await app.post(sample(name, connector.url), **keys.authorization(connector.url))
    await app.settle()

    answers = await stored(app, "SELECT count(*) FROM session_messages WHERE role = 'assistant'")
    if expected == ANSWERED:
        assert response.status == 202
        assert [m.text for m in connector.messages] == ["Here is what the documents say."]
        assert answers == 1
    elif expected == IN_RESPONSE:
        assert response.status == 200
        replies = (await response.json())["activities"]
        assert [r["text"] for r in replies] == ["Here is what the documents say."]
        assert connector.messages == [] and answers == 1
    else:
        assert response.status == (200 if expected == INVOKE else 202)
        assert connector.messages == []
        assert await stored(app, "SELECT count(*) FROM session_messages") == 0
        assert await stored(app, "SELECT count(*) FROM processed_events") == 0
    if expected == QUIET:
        assert await stored(app, "SELECT count(*) FROM users") == 0


@pytest.mark.parametrize("name", [n for n, e in EXPECTED.items() if e == ANSWERED])
async def test_a_real_message_delivered_twice_is_answered_once(
    service: tuple[Service, FakeBotFrameworkKeys], connector: FakeBotConnector, name: str
) -> None:
    app, keys = service
    for _ in range(2):
        response = await app.post(sample(name, connector.url), **keys.authorization(connector.url))
        assert response.status == 202
    await app.settle()
    assert len(connector.messages) == 1
