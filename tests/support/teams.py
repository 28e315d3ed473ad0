"""The Teams service under test: the real aiohttp app with the Teams edge on a free port, in
anonymous mode, with fake Claude; shared by the Teams integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from aiohttp.test_utils import TestClient, TestServer
from microsoft_agents.hosting.core.app.streaming import StreamingResponse
from pydantic import SecretStr

from bot.runtime import Runtime
from bot.settings import Settings
from handlers.http import create_app
from handlers.teams import install
from tests.support.fakes.anthropic_server import FakeAnthropic


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
