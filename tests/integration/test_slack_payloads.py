"""Real Slack payloads (tests/payloads/slack, see SOURCES.md there), replayed correctly signed
against the real app and a fake Slack Web API: each gets a 2xx; the messages a person wrote to
deskmate are answered once, Slack retries included; everything else leaves no trace."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from bot.settings import Settings
from handlers.slack.revocation import TokenRevocation
from tests.support.fakes.anthropic_server import FakeAnthropic
from tests.support.fakes.slack_api import FakeSlack
from tests.support.slack_requests import SlackService, payload_request, post_signed, running_slack

PAYLOADS = Path(__file__).resolve().parents[1] / "payloads" / "slack"
# What a person could see change: nothing here may grow for a payload that is not for deskmate.
CONVERSATION_TABLES = ("users", "chat_sessions", "session_messages", "memories", "query_log")


class Outcome(Enum):
    ANSWER = "a person's message to deskmate: answered once, in Slack"
    COMMAND = "/deskmate: answered to the person only"
    CLICK = "a deskmate button: the clicker is looked up and hears back"
    HOME = "the App Home tab is published"
    PROMPTS = "an assistant thread gets suggested prompts"
    REVOKED = "the app's token is gone: recorded, deliveries stop"
    CHALLENGE = "Slack's URL check is answered with its challenge"
    NOTHING = "a 2xx and nothing else"


EXPECTED = {
    "event_app_mention.json": Outcome.ANSWER,
    "event_app_mention_in_thread.json": Outcome.ANSWER,
    "event_message_im.json": Outcome.ANSWER,
    "event_message_im_assistant_thread.json": Outcome.ANSWER,
    "command_deskmate_help.json": Outcome.COMMAND,
    "interactive_block_actions_feedback.json": Outcome.CLICK,
    "event_app_home_opened.json": Outcome.HOME,
    "event_assistant_thread_started.json": Outcome.PROMPTS,
    "event_app_uninstalled.json": Outcome.REVOKED,
    "event_tokens_revoked.json": Outcome.REVOKED,
    "event_url_verification.json": Outcome.CHALLENGE,
    # Messages that are not a person talking to deskmate.
    "event_message_channel.json": Outcome.NOTHING,  # a channel message without a mention
    "event_message_user_in_channel.json": Outcome.NOTHING,
    "event_message_org_install.json": Outcome.NOTHING,  # mentions another app's bot
    "event_message_file_share_channel.json": Outcome.NOTHING,
    "event_message_file_share_group.json": Outcome.NOTHING,
    "event_message_thread_broadcast.json": Outcome.NOTHING,  # a thread deskmate is not in
    "event_message_thread_reply_elsewhere.json": Outcome.NOTHING,
    "event_message_im_slackbot.json": Outcome.NOTHING,
    "event_message_im_other_app.json": Outcome.NOTHING,
    "event_message_bot_message.json": Outcome.NOTHING,
    "event_message_bot_profile.json": Outcome.NOTHING,
    "event_message_changed.json": Outcome.NOTHING,
    "event_message_changed_im_assistant.json": Outcome.NOTHING,
    "event_message_deleted.json": Outcome.NOTHING,
    "event_message_channel_join.json": Outcome.NOTHING,
    # Events and interactions deskmate has no use for.
    "event_assistant_thread_context_changed.json": Outcome.NOTHING,
    "event_reaction_added.json": Outcome.NOTHING,
    "event_member_joined_channel.json": Outcome.NOTHING,
    "event_member_left_channel.json": Outcome.NOTHING,
    "event_channel_left.json": Outcome.NOTHING,
    "event_team_access_granted.json": Outcome.NOTHING,
    "event_app_rate_limited.json": Outcome.NOTHING,
    "form_ssl_check.json": Outcome.NOTHING,
    "command_other_app.json": Outcome.NOTHING,
    "interactive_block_actions_other_app.json": Outcome.NOTHING,
    "interactive_block_suggestion.json": Outcome.NOTHING,
    "interactive_view_submission.json": Outcome.NOTHING,
    "interactive_view_closed.json": Outcome.NOTHING,
    "interactive_global_shortcut.json": Outcome.NOTHING,
    "interactive_message_shortcut.json": Outcome.NOTHING,
    "interactive_attachment_action.json": Outcome.NOTHING,
}
RETRY = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
ANSWER_CALLS = ("chat.postMessage", "chat.update", "chat.startStream", "chat.postEphemeral")


def test_every_stored_payload_has_an_expected_outcome() -> None:
    stored = sorted(path.name for path in PAYLOADS.glob("*.json"))
    assert stored == sorted(EXPECTED)
    assert len(stored) >= 30


@pytest.fixture
async def service(
    settings: Settings, fake_slack: FakeSlack, fake_anthropic: FakeAnthropic
) -> AsyncIterator[SlackService]:
    async with running_slack(settings, fake_slack, fake_anthropic) as running:
        yield running


def _with_response_url(data: Any, url: str) -> Any:
    """The payload with every response_url pointing at the fake, so nothing leaves the test."""
    if isinstance(data, dict):
        return {k: url if k == "response_url" else _with_response_url(v, url)
                for k, v in data.items()}  # fmt: skip
    if isinstance(data, list):
        return [_with_response_url(item, url) for item in data]
    return data


async def _replay(service: SlackService, name: str) -> list[int]:
    """Send the payload as Slack does; events a second time, as Slack's retry."""
    data = _with_response_url(json.loads((PAYLOADS / name).read_text()), service.response_url(1))
    body, content_type = payload_request(name, data)
    statuses = [(await post_signed(service.client, body, content_type=content_type)).status]
    await service.settle()
    if name.startswith("event_"):
        retried = await post_signed(service.client, body, content_type=content_type, headers=RETRY)
        statuses.append(retried.status)
        await service.settle()
    return statuses


async def _counts(service: SlackService) -> dict[str, int]:
    return {table: await service.count(table) for table in CONVERSATION_TABLES}


@pytest.mark.parametrize("name", sorted(EXPECTED))
async def test_a_real_payload_gets_a_2xx_and_exactly_its_answer(
    service: SlackService, name: str
) -> None:
    before = await _counts(service)
    statuses = await _replay(service, name)
    assert all(200 <= status < 300 for status in statuses), statuses
    outcome = EXPECTED[name]
    answers = len(service.claude.answer_requests)
    assert answers == (1 if outcome is Outcome.ANSWER else 0)
    posted = [c.method for c in service.slack.calls if c.method in ANSWER_CALLS]
    assert bool(posted) == (outcome is Outcome.ANSWER)
    told = service.slack.called("response_url:1")
    assert len(told) == (1 if outcome in (Outcome.COMMAND, Outcome.CLICK) else 0)
    assert len(service.slack.called("views.publish")) == (outcome is Outcome.HOME)
    prompts = service.slack.called("assistant.threads.setSuggestedPrompts")
    assert len(prompts) == (outcome is Outcome.PROMPTS)
    revoked = await TokenRevocation(service.db, "xoxb-test-token").reason()
    assert (revoked is not None) == (outcome is Outcome.REVOKED)
    if outcome is Outcome.NOTHING or outcome is Outcome.REVOKED:
        assert await _counts(service) == before
    if outcome is Outcome.CLICK:
        assert told[0].body["response_type"] == "ephemeral"
        assert [c.body["user"] for c in service.slack.called("users.info")] == ["W555"]


async def test_the_url_check_gets_its_challenge_back(service: SlackService) -> None:
    data = json.loads((PAYLOADS / "event_url_verification.json").read_text())
    body, content_type = payload_request("event_url_verification.json", data)
    response = await post_signed(service.client, body, content_type=content_type)
    assert response.status == 200
    assert data["challenge"] in await response.text()
