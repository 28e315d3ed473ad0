"""The Teams service under test: the real aiohttp app with the Teams edge on a free port, in
anonymous mode, with fake Claude; shared by the Teams integration tests."""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from microsoft_agents.authentication.msal import MsalAuth
from microsoft_agents.hosting.core.app.streaming import StreamingResponse
from microsoft_agents.hosting.core.authorization._entra_issuers import (
    BOTFRAMEWORK_JWKS_URIS,
    BOTFRAMEWORK_PUBLIC_ISSUER,
)
from pydantic import SecretStr

from bot.runtime import Runtime
from bot.settings import Settings
from handlers.http import create_app
from handlers.teams import install
from tests.support.fakes.anthropic_server import FakeAnthropic
from tests.support.fakes.bot_connector import AAD_TENANT


@dataclass
class Service:
    runtime: Runtime
    client: TestClient

    async def post(self, activity: dict, **headers: str):  # type: ignore[no-untyped-def]
        return await self.client.post("/api/messages", json=activity, headers=headers)

    async def settle(self) -> None:
        """Wait for the background answers the requests started."""
        await self.runtime.tasks.join()

    async def count(self, table: str) -> int:
        async with self.runtime.db.pool.acquire() as conn:
            return await conn.fetchval(f"SELECT count(*) FROM {table}")


def quicken_streaming(monkeypatch: pytest.MonkeyPatch) -> None:
    """Teams takes one streaming update a second, so the SDK waits that long after each; the
    tests need not."""
    original = StreamingResponse._set_defaults

    def quick(self, context):  # type: ignore[no-untyped-def]
        original(self, context)
        self._interval = 0.01

    monkeypatch.setattr(StreamingResponse, "_set_defaults", quick)


def with_teams(settings: Settings, fake_anthropic: FakeAnthropic) -> Settings:
    """Teams in anonymous mode (no token, no MSAL) and fake Claude; no scheduler loop (its
    worker would keep `runtime.tasks.join()` waiting)."""
    return settings.model_copy(update={
        "teams_anonymous_allowed": True, "anthropic_api_key": SecretStr("sk-test"),
        "anthropic_base_url": fake_anthropic.url, "scheduler_enabled": False,
    })  # fmt: skip


async def start_service(settings: Settings) -> tuple[Runtime, TestClient]:
    """A started runtime and the real aiohttp app with the Teams edge, on a free port."""
    runtime = Runtime(settings)
    await runtime.start()
    client = TestClient(TestServer(create_app(runtime, [install])))
    await client.start_server()
    return runtime, client


@asynccontextmanager
async def running_service(settings: Settings) -> AsyncIterator[Service]:
    runtime, client = await start_service(settings)
    try:
        yield Service(runtime, client)
        await runtime.tasks.join()
    finally:
        await client.close()
        await runtime.stop()


# --- a Teams edge with real tokens -------------------------------------------------------------

# The app id deskmate is registered under in the secured tests (the tokens' audience).
BOT_APP_ID = "00000000-0000-4000-8000-000000000b07"
SIGNING_KEY_ID = "deskmate-test-signing-key"


@functools.cache
def _signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class FakeBotFrameworkKeys:
    """Bot Framework's token signing keys, served on this machine: tokens signed here pass the
    SDK's real validation (key lookup by `kid`, RS256 signature, audience, issuer)."""

    url: str = ""

    def keys(self) -> dict[str, Any]:
        public = RSAAlgorithm.to_jwk(_signing_key().public_key(), as_dict=True)
        return {"keys": [{**public, "kid": SIGNING_KEY_ID, "use": "sig", "alg": "RS256"}]}

    def token(self, service_url: str, **claims: Any) -> str:
        """A token as the Bot Connector sends it with each activity, for `service_url`."""
        now = int(time.time())
        body = {"iss": BOTFRAMEWORK_PUBLIC_ISSUER, "aud": BOT_APP_ID, "serviceurl": service_url,
                "nbf": now - 60, "exp": now + 3600, **claims}  # fmt: skip
        return jwt.encode(body, _signing_key(), algorithm="RS256",
                          headers={"kid": SIGNING_KEY_ID})  # fmt: skip

    def authorization(self, service_url: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(service_url)}"}


@asynccontextmanager
async def bot_framework_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[FakeBotFrameworkKeys]:
    """The fake keys on a free port, where the SDK looks Bot Framework's keys up; deskmate's own
    outbound token (from Entra, over the internet) is replaced by a fixed one."""
    fake = FakeBotFrameworkKeys()

    async def keys(request: web.Request) -> web.Response:
        return web.json_response(fake.keys())

    app = web.Application()
    app.router.add_get("/keys", keys)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}/keys"
    monkeypatch.setitem(BOTFRAMEWORK_JWKS_URIS, BOTFRAMEWORK_PUBLIC_ISSUER, fake.url)

    async def connector_token(self: MsalAuth, *args: Any, **kwargs: Any) -> str:
        return "deskmate-connector-token"

    monkeypatch.setattr(MsalAuth, "get_access_token", connector_token)
    try:
        yield fake
    finally:
        await runner.cleanup()


def secured(settings: Settings, fake_anthropic: FakeAnthropic) -> Settings:
    """Teams as in production: an app id and secret, tokens required; fake Claude."""
    return settings.model_copy(update={
        "teams_client_id": BOT_APP_ID, "teams_client_secret": SecretStr("not-used"),
        "teams_tenant_id": AAD_TENANT, "anthropic_api_key": SecretStr("sk-test"),
        "anthropic_base_url": fake_anthropic.url, "scheduler_enabled": False,
    })  # fmt: skip
