"""Multi-workspace Slack: the OAuth install flow, a tenant per workspace, uninstall."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlparse

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bot.outbound import DeliveryError, Outbound, Target
from bot.runtime import Runtime
from bot.settings import Settings
from handlers.http import create_app
from handlers.slack import install
from storage.database import Database
from tests.support.fakes.slack_api import FakeSlack
from tests.support.slack_requests import SIGNING_SECRET, dm_event, envelope, sign


@pytest.fixture
async def oauth_app(
    settings: Settings, db: Database, fake_slack: FakeSlack
) -> AsyncIterator[tuple[TestClient, Runtime]]:
    oauth_settings = settings.model_copy(
        update={
            "slack_client_id": "111.222",
            "slack_client_secret": SecretStr("client-secret"),
            "slack_signing_secret": SecretStr(SIGNING_SECRET),
            "slack_api_url": fake_slack.url,
        }
    )
    runtime = Runtime(oauth_settings)
    await runtime.start()
    async with TestClient(TestServer(create_app(runtime, [install]))) as client:
        yield client, runtime
        await runtime.tasks.join()
    await runtime.stop()


async def _install_workspace(client: TestClient, code: str) -> str:
    start = await client.get("/slack/install", allow_redirects=False)
    assert start.status in (200, 302)
    page = await start.text()
    link = (
        start.headers.get("Location")
        or re.search(r'https://slack.com/oauth/v2/authorize[^"]+', page)[0]
    )
    authorize = urlparse(link.replace("&amp;", "&"))
    state = parse_qs(authorize.query)["state"][0]
    assert "chat%3Awrite" in link or "chat:write" in link
    # The state cookie is Secure (Slack requires https); a browser would send it back.
    cookie = start.headers["Set-Cookie"].split(";", 1)[0]
    callback = await client.get(
        f"/slack/oauth_redirect?code={code}&state={state}",
        allow_redirects=False,
        headers={"Cookie": cookie},
    )
    assert callback.status == 200, await callback.text()
    return state


async def test_install_creates_a_tenant_and_events_use_its_token(
    oauth_app: tuple[TestClient, Runtime], fake_slack: FakeSlack, db: Database
) -> None:
    client, runtime = oauth_app
    await _install_workspace(client, "beta")
    async with db.pool.acquire() as conn:
        tenant = await conn.fetchrow("SELECT id, slug, name FROM tenants WHERE slug <> 'default'")
        stored = await conn.fetchval("SELECT team_id FROM slack_installations")
    assert tenant["slug"] == "slack-t-beta" and tenant["name"] == "Workspace T-BETA"
    assert stored == "T-BETA"

    event = dict(dm_event("hello there"), team="T-BETA")
    body = envelope(event)
    body["team_id"] = "T-BETA"
    body["authorizations"][0]["team_id"] = "T-BETA"
    raw = json.dumps(body)
    response = await client.post(
        "/slack/events", data=raw, headers={"Content-Type": "application/json", **sign(raw)}
    )
    assert response.status == 200
    await runtime.tasks.join()
    streams = fake_slack.called("chat.startStream")
    assert streams and streams[0].token == "xoxb-T-BETA"
    async with db.pool.acquire() as conn:
        session_tenant = await conn.fetchval("SELECT tenant_id FROM chat_sessions")
    assert session_tenant == tenant["id"]  # the workspace's own tenant, not the default

    sender = runtime.senders.get("slack")
    delivery = await sender.post(Target("slack", "C9", tenant="slack-t-beta"), Outbound("hi"))
    assert delivery.message_id
    assert fake_slack.called("chat.postMessage")[-1].token == "xoxb-T-BETA"


async def test_a_forged_state_is_refused(
    oauth_app: tuple[TestClient, Runtime], db: Database
) -> None:
    client, _ = oauth_app
    response = await client.get(
        "/slack/oauth_redirect?code=evil&state=made-up", allow_redirects=False
    )
    assert response.status >= 400
    async with db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM slack_installations") == 0


async def test_uninstall_forgets_the_tokens(
    oauth_app: tuple[TestClient, Runtime], db: Database
) -> None:
    client, runtime = oauth_app
    await _install_workspace(client, "gamma")
    event = {"type": "app_uninstalled"}
    body = envelope(event)
    body["team_id"] = "T-GAMMA"
    body["authorizations"][0]["team_id"] = "T-GAMMA"
    raw = json.dumps(body)
    response = await client.post(
        "/slack/events", data=raw, headers={"Content-Type": "application/json", **sign(raw)}
    )
    assert response.status == 200
    await runtime.tasks.join()
    async with db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM slack_installations") == 0
    with pytest.raises(DeliveryError):
        await runtime.senders.get("slack").post(
            Target("slack", "C1", tenant="slack-t-gamma"), Outbound("hi")
        )
