"""Slack at the edge: hostile bodies get a clear 400 or 401 and leave no trace, never a 500;
every verified request gets a 2xx; Slackbot and other apps are not people; a person whose first
contact is a button click is looked up; an uninstalled token-mode app says so when it sends."""

from __future__ import annotations

import json
import string
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from bot.errors import ConfigError
from bot.identity import resolve_user
from bot.messages import IncomingMessage, Profile
from bot.outbound import DeliveryError, Outbound, Target
from bot.runtime import Runtime
from bot.settings import Settings, load_settings
from handlers.slack import build_bolt
from handlers.slack.revocation import TokenRevocation
from handlers.slack.sender import slack_client
from storage.database import Database
from tests.support.factories import add_user
from tests.support.fakes.anthropic_server import FakeAnthropic
from tests.support.fakes.slack_api import FakeSlack
from tests.support.slack_requests import (
    FORM,
    SlackService,
    dm_event,
    envelope,
    post_click,
    post_event,
    post_signed,
    running_slack,
    sign,
)

TRACES = ("chat_sessions", "session_messages", "processed_events", "users", "query_log")


@pytest.fixture
async def service(
    settings: Settings, fake_slack: FakeSlack, fake_anthropic: FakeAnthropic
) -> AsyncIterator[SlackService]:
    async with running_slack(settings, fake_slack, fake_anthropic) as running:
        yield running


async def _traces(service: SlackService) -> dict[str, int]:
    return {table: await service.count(table) for table in TRACES}


def _web_api_calls(service: SlackService) -> list[str]:
    """What deskmate asked Slack, beyond Bolt's one-off check of its own token."""
    return [call.method for call in service.slack.calls if call.method != "auth.test"]


def _form(payload: object) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


NESTED = ("[" * 50_000 + "]" * 50_000).encode()
HOSTILE: dict[str, tuple[bytes, str]] = {
    "a JSON array": (b"[1, 2, 3]", "application/json"),
    "a JSON string": (b'"hello"', "application/json"),
    "null": (b"null", "application/json"),
    "a null view": (b'{"view": null}', "application/json"),
    "JSON nested 50,000 deep": (NESTED, "application/json"),
    "an object nested 50,000 deep": (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "text/plain"),
    "not UTF-8": (b'{"type": "\xff\xfe"}', "application/json"),
    "an event that is a list": (b'{"type": "event_callback", "event": [1]}', "application/json"),
    "an event that is a string": (
        b'{"type": "event_callback", "event": "type"}',
        "application/json",
    ),
    "an event type that is a number": (
        b'{"type": "event_callback", "event": {"type": 7}}',
        "application/json",
    ),
    "authorizations that are a string": (b'{"authorizations": "xyz"}', "application/json"),
    "a team that is a number": (b'{"team": 5, "type": "block_actions"}', "application/json"),
    "a form payload that is a list": (_form([1, 2]), FORM),
    "a form payload that is a string": (_form("hi"), FORM),
    "a form payload that is null": (_form(None), FORM),
    "a form payload that is not JSON": (b"payload=%7Bnope", FORM),
    "a click without actions": (_form({"type": "block_actions", "actions": []}), FORM),
    "a click with a user list": (
        _form({"type": "block_actions", "user": [1], "actions": [{"action_id": "deskmate:x:0"}]}),
        FORM,
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_a_signed_malformed_body_is_a_400_that_leaves_no_trace(
    service: SlackService, name: str
) -> None:
    body, content_type = HOSTILE[name]
    before = await _traces(service)
    response = await post_signed(service.client, body, content_type=content_type)
    await service.settle()
    assert response.status == 400, await response.text()
    assert "error" in await response.json()
    assert await _traces(service) == before
    assert service.claude.requests == [] and _web_api_calls(service) == []


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Slack-Request-Timestamp": "yesterday"},
        {"X-Slack-Request-Timestamp": "9" * 40},
        {"X-Slack-Request-Timestamp": "١٧٠٠٠٠٠٠٠٠"},  # digits, but not ASCII ones
        {"X-Slack-Request-Timestamp": ""},
        {"X-Slack-Signature": ""},
        {"X-Slack-Signature": "v0=not-hex"},
    ],
)
async def test_bad_signature_headers_are_a_401_before_the_body_is_read(
    service: SlackService, headers: dict[str, str]
) -> None:
    body = "[1, 2, 3]"  # malformed too: the signature is checked first
    sent = {"Content-Type": "application/json", **sign(body), **headers}
    response = await service.client.post("/slack/events", data=body, headers=sent)
    assert response.status == 401
    unsigned = await service.client.post("/slack/events", data=body)
    assert unsigned.status == 401


async def test_bolt_only_headers_from_the_network_are_ignored(service: SlackService) -> None:
    body = json.dumps(envelope(dm_event("who approves discounts?")))
    response = await post_signed(service.client, body, headers={
        "X-Slack-Bolt-Lazy-Only": "1", "X-Slack-Bolt-Lazy-Function-Name": "nothing",
    })  # fmt: skip
    await service.settle()
    assert response.status == 200
    assert len(service.claude.answer_requests) == 1  # answered as any DM


async def test_a_slackbot_dm_and_another_apps_post_are_not_answered(
    service: SlackService,
) -> None:
    slackbot = dm_event("Reminder: fill in your timesheet", user="USLACKBOT")
    other_app = dict(dm_event("Build #12 passed", ts="1.2", user="U-CI"),
                     bot_profile={"id": "B-CI", "app_id": "A-CI", "name": "ci"})  # fmt: skip
    before = await _traces(service)
    for number, event in enumerate((slackbot, other_app)):
        response = await post_event(service.client, event, event_id=f"Ev{number}")
        assert response.status == 200
    await service.settle()
    assert service.claude.requests == []
    assert _web_api_calls(service) == []  # no users.info, no answer
    assert await _traces(service) == before


async def test_a_first_click_looks_the_person_up_and_links_them_by_email(
    service: SlackService,
) -> None:
    await add_user(service.db, "bo@example.com", ["hr"])
    service.slack.add_user("U-BO", "Bo@Example.com", "Bo Berg")
    response = await post_click(service.client, "deskmate:feedback:0", "123456:up",
                                service.response_url(1), user="U-BO")  # fmt: skip
    await service.settle()
    assert response.status == 200
    told = service.slack.called("response_url:1")[0].body["text"]
    assert told == "That answer is no longer there to rate."
    assert [c.body["user"] for c in service.slack.called("users.info")] == ["U-BO"]
    assert await _linked_email(service.db, "U-BO") == "bo@example.com"
    assert await service.count("users") == 1  # no placeholder made up for Bo


async def test_a_placeholder_from_a_click_is_relinked_by_email_on_the_next_message(
    service: SlackService,
) -> None:
    await add_user(service.db, "cy@example.com", ["sales"])
    service.slack.fail("users.info", "user_not_found")  # the profile cannot be read at first
    await post_click(service.client, "deskmate:feedback:0", "1:up", service.response_url(2),
                     user="U-CY")  # fmt: skip
    await service.settle()
    assert await _linked_email(service.db, "U-CY") == "u-cy@slack-t1.invalid"
    service.slack.add_user("U-CY", "cy@example.com", "Cy")
    await post_event(service.client, dm_event("discount approvals?", user="U-CY"))
    await service.settle()
    assert await _linked_email(service.db, "U-CY") == "cy@example.com"
    assert len(service.slack.called("users.info")) == 2  # the click, then the message


async def test_a_placeholder_takes_the_email_when_nobody_has_it(db: Database) -> None:
    profiles = [Profile(), Profile("Kim@Example.com", "Kim")]
    asked: list[int] = []

    async def lookup() -> Profile:
        asked.append(1)
        return profiles[min(len(asked), len(profiles)) - 1]

    message = IncomingMessage(platform="slack", user_id="U-KIM", conversation_id="D1", text="hi",
                              is_direct=True, workspace_id="T1", lookup_profile=lookup)  # fmt: skip
    _, placeholder = await resolve_user(db, message, "UTC")
    _, kim = await resolve_user(db, message, "UTC")
    _, again = await resolve_user(db, message, "UTC")
    assert placeholder.email == "u-kim@slack-t1.invalid"
    assert (kim.id, kim.email, kim.display_name) == (placeholder.id, "kim@example.com", "Kim")
    assert again == kim and len(asked) == 2  # known by email now: no more lookups


async def _linked_email(db: Database, platform_user_id: str) -> str | None:
    async with db.pool.acquire() as conn:
        return await conn.fetchval(
            "SELECT u.email FROM platform_identities i JOIN users u ON u.id = i.user_id "
            "WHERE i.platform_user_id = $1",
            platform_user_id,
        )


@pytest.mark.parametrize("event", [
    {"type": "app_uninstalled"},
    {"type": "tokens_revoked", "tokens": {"oauth": ["U-ANA"], "bot": ["UBOT"]}},
])  # fmt: skip
async def test_token_mode_uninstall_stops_deliveries_with_a_reason(
    service: SlackService, event: dict[str, Any]
) -> None:
    response = await post_event(service.client, event)
    assert response.status == 200
    sender = service.runtime.senders.get("slack")
    with pytest.raises(DeliveryError) as refused:
        await sender.post(Target("slack", "C1"), Outbound(text="Stand-up in five minutes"))
    assert not refused.value.retryable
    assert "in Slack workspace T1" in str(refused.value)
    assert "set the new SLACK_BOT_TOKEN" in str(refused.value)
    assert service.slack.called("chat.postMessage") == []
    # Another replica, sharing the database, knows too; a new token starts clean.
    assert await TokenRevocation(service.db, "xoxb-test-token").reason() is not None
    assert await TokenRevocation(service.db, "xoxb-new-token").reason() is None


async def test_revoking_only_user_tokens_leaves_the_bot_sending(service: SlackService) -> None:
    event = {"type": "tokens_revoked", "tokens": {"oauth": ["U-ANA"], "bot": []}}
    assert (await post_event(service.client, event)).status == 200
    await service.runtime.senders.get("slack").post(Target("slack", "C1"), Outbound(text="hi"))
    assert len(service.slack.called("chat.postMessage")) == 1


def test_a_bot_token_without_signing_secret_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-secret-token")
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=None)
    message = str(caught.value)
    assert message.startswith("invalid setting SLACK_SIGNING_SECRET:")
    assert "\n" not in message and "xoxb" not in message


def test_the_slack_app_refuses_to_build_without_a_signing_secret(settings: Settings) -> None:
    unsigned = settings.model_copy(update={"slack_bot_token": None, "slack_signing_secret": None})
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET is not set"):
        build_bolt(Runtime(unsigned), slack_client(unsigned, None))


# --- property-based: no signed request, however strange, gets a 5xx --------------------------

SLACK_KEYS = [
    "type", "event", "team", "team_id", "user", "user_id", "channel", "channel_id", "enterprise",
    "enterprise_id", "authorizations", "actions", "view", "message", "container", "ts",
    "thread_ts", "subtype", "channel_type", "bot_id", "text", "command", "response_url",
    "trigger_id", "action_id", "callback_id", "value", "assistant_thread", "tokens", "item",
    "is_ext_shared_channel", "challenge", "payload", "api_app_id", "response_urls", "state",
    "is_enterprise_install", "function_data", "previous_message", "bot_profile", "tab", "id",
]  # fmt: skip
SLACK_TYPES = [
    "event_callback", "url_verification", "block_actions", "view_submission", "view_closed",
    "shortcut", "message_action", "block_suggestion", "interactive_message", "app_rate_limited",
    "message", "app_mention", "app_home_opened", "assistant_thread_started",
    "assistant_thread_context_changed", "app_uninstalled", "tokens_revoked", "reaction_added",
    "function_executed", "im", "channel", "deskmate:feedback:0", "deskmate:alert_ack:0",
]  # fmt: skip
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
    st.sampled_from(SLACK_TYPES), st.text(max_size=12),
)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.one_of(st.sampled_from(SLACK_KEYS), st.text(max_size=6)), inner, max_size=5
        ),
    ),
    max_leaves=25,
)
slack_shaped = st.dictionaries(st.sampled_from(SLACK_KEYS), json_values, max_size=8)
form_text = st.text(alphabet=string.printable, max_size=20)


@st.composite
def signed_requests(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    """A body (JSON, a form, a form with a `payload`) and the headers it comes with."""
    value = draw(st.one_of(slack_shaped, json_values))
    kind = draw(st.sampled_from(["json", "form", "payload"]))
    if kind == "json":
        body = json.dumps(value)
    elif kind == "payload":
        body = urlencode({"payload": json.dumps(value)})
    else:
        fields = draw(st.dictionaries(st.sampled_from([*SLACK_KEYS, "ssl_check"]), form_text))
        body = urlencode(fields)
    content_type = draw(st.sampled_from(["application/json", FORM, "text/plain", ""]))
    extra = draw(st.dictionaries(
        st.sampled_from(["X-Slack-Retry-Num", "X-Slack-Retry-Reason", "X-Slack-Bolt-Lazy-Only",
                         "X-Forwarded-For"]),
        st.text(alphabet=string.ascii_letters + string.digits, max_size=8),
    ))  # fmt: skip
    return body.encode(), {"Content-Type": content_type, **extra} if content_type else extra


async def test_signed_fuzzed_requests_never_get_a_5xx(service: SlackService) -> None:
    cases: list[tuple[bytes, dict[str, str]]] = []

    @hypothesis_settings(max_examples=300, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(signed_requests())
    def collect(case: tuple[bytes, dict[str, str]]) -> None:
        cases.append(case)

    collect()
    server_errors = []
    for body, headers in cases:
        content_type = headers.pop("Content-Type", "")
        response = await post_signed(service.client, body, content_type=content_type,
                                     headers=headers)  # fmt: skip
        if response.status >= 500:
            server_errors.append((response.status, body[:300]))
    await service.settle()
    assert len(cases) >= 250
    assert server_errors == []
