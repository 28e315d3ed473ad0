"""Signed Slack requests against the real `/slack/events` endpoint of the real app."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bot.runtime import Runtime
from bot.settings import Settings
from handlers.http import create_app
from handlers.slack import install
from storage.database import Database
from tests.support.fakes.anthropic_server import FakeAnthropic
from tests.support.fakes.slack_api import FakeSlack

SIGNING_SECRET = "test-signing-secret"
TEAM = "T1"
BOT = "UBOT"


def sign(body: str, timestamp: int | None = None, secret: str = SIGNING_SECRET) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def envelope(event: dict[str, Any], event_id: str = "Ev1") -> dict[str, Any]:
    return {"token": "x", "team_id": TEAM, "api_app_id": "A1", "type": "event_callback",
            "event_id": event_id, "event_time": int(time.time()), "event": event,
            "authorizations": [{"team_id": TEAM, "user_id": BOT, "is_bot": True}]}  # fmt: skip


def dm_event(text: str, ts: str = "1700000000.000100", user: str = "U-ANA") -> dict[str, Any]:
    return {"type": "message", "channel_type": "im", "channel": "D1", "user": user,
            "text": text, "ts": ts, "team": TEAM}  # fmt: skip


def mention_event(text: str, channel: str = "C1", ts: str = "1700000000.000200",
                  user: str = "U-ANA", thread_ts: str | None = None) -> dict[str, Any]:  # fmt: skip
    event = {"type": "app_mention", "channel": channel, "user": user, "ts": ts, "team": TEAM,
             "text": f"<@{BOT}> {text}"}  # fmt: skip
    if thread_ts:
        event["thread_ts"] = thread_ts
    return event


async def post_event(
    client: TestClient, event: dict[str, Any], *, event_id: str = "Ev1",
    retry: int | None = None, timestamp: int | None = None, secret: str = SIGNING_SECRET,
) -> Any:  # fmt: skip
    body = json.dumps(envelope(event, event_id))
    headers = {"Content-Type": "application/json", **sign(body, timestamp, secret)}
    if retry is not None:
        headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    return await client.post("/slack/events", data=body, headers=headers)


async def post_form(client: TestClient, fields: dict[str, str]) -> Any:
    body = urlencode(fields)
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(body)}
    return await client.post("/slack/events", data=body, headers=headers)


async def post_command(client: TestClient, text: str, response_url: str,
                       user: str = "U-ANA") -> Any:  # fmt: skip
    return await post_form(client, {
        "command": "/deskmate", "text": text, "team_id": TEAM, "channel_id": "C1",
        "user_id": user, "response_url": response_url, "trigger_id": "trig1",
        "token": "x", "api_app_id": "A1",
    })  # fmt: skip


async def post_click(client: TestClient, action_id: str, value: str, response_url: str,
                     user: str = "U-ANA") -> Any:  # fmt: skip
    payload = {
        "type": "block_actions", "team": {"id": TEAM}, "user": {"id": user},
        "api_app_id": "A1", "token": "x", "trigger_id": "trig2", "response_url": response_url,
        "container": {"type": "message", "channel_id": "C1", "message_ts": "1700000001.000100"},
        "channel": {"id": "C1"}, "message": {"ts": "1700000001.000100", "text": "answer"},
        "actions": [{"type": "button", "action_id": action_id, "value": value,
                     "block_id": "b1", "action_ts": "1700000002.0"}],
    }  # fmt: skip
    return await post_form(client, {"payload": json.dumps(payload)})


def sign_bytes(
    body: bytes, timestamp: int | None = None, secret: str = SIGNING_SECRET
) -> dict[str, str]:
    """Slack's signature over exact bytes (which need not be UTF-8, or JSON, or anything)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


async def post_signed(
    client: TestClient, body: str | bytes, *, content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> Any:  # fmt: skip
    """POST any body, correctly signed; `headers` are added (they may not replace the
    signature's)."""
    raw = body.encode() if isinstance(body, str) else body
    sent = {"Content-Type": content_type, **(headers or {}), **sign_bytes(raw)}
    return await client.post("/slack/events", data=raw, headers=sent)


FORM = "application/x-www-form-urlencoded"


def payload_request(name: str, data: dict[str, Any]) -> tuple[str, str]:
    """A stored payload as Slack sends it, by the file name's prefix: `event_*` a JSON body,
    `command_*` and `form_*` form fields, `interactive_*` a form's `payload` field."""
    if name.startswith("event_"):
        return json.dumps(data), "application/json"
    if name.startswith(("command_", "form_")):
        return urlencode(data), FORM
    if name.startswith("interactive_"):
        return urlencode({"payload": json.dumps(data)}), FORM
    raise ValueError(f"no request kind for payload {name}")


@dataclass
class SlackService:
    """The real app with the Slack wing, its runtime, and the fakes it talks to."""

    client: TestClient
    runtime: Runtime
    slack: FakeSlack
    claude: FakeAnthropic

    @property
    def db(self) -> Database:
        return self.runtime.db

    async def settle(self) -> None:
        await self.runtime.tasks.join()

    async def count(self, table: str) -> int:
        async with self.db.pool.acquire() as conn:
            return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))

    def response_url(self, number: int) -> str:
        """A response_url served by the fake; what is said there is `slack.called(...)`."""
        return self.slack.url.replace("/api/", f"/response_url/{number}")


@asynccontextmanager
async def running_slack(
    settings: Settings, slack: FakeSlack, claude: FakeAnthropic
) -> AsyncIterator[SlackService]:
    """Single-workspace (token) Slack on the fakes, with Claude configured."""
    configured = settings.model_copy(update={
        "slack_bot_token": SecretStr("xoxb-test-token"),
        "slack_signing_secret": SecretStr(SIGNING_SECRET),
        "slack_api_url": slack.url,
        "anthropic_api_key": SecretStr("sk-test"),
        "anthropic_base_url": claude.url,
    })  # fmt: skip
    runtime = Runtime(configured)
    await runtime.start()
    try:
        async with TestClient(TestServer(create_app(runtime, [install]))) as client:
            yield SlackService(client, runtime, slack, claude)
            await runtime.tasks.join()
    finally:
        await runtime.stop()
