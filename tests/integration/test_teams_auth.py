"""Teams at the door: no valid token, no entry and no trace; malformed payloads are 4xx; an
internal failure is a 500 with a reference, never exception text in the chat."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from bot.settings import Settings
from tests.support.fakes.anthropic_server import FakeAnthropic
from tests.support.fakes.bot_connector import (
    AAD_TENANT,
    FakeBotConnector,
    personal_message,
    running_connector,
)
from tests.support.teams import Service, running_service, start_service, with_teams

# The SDK's own JWT middleware stores its result under a plain string key.
pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web.NotAppKeyWarning")


@pytest.fixture
async def connector() -> AsyncIterator[FakeBotConnector]:
    async with running_connector() as fake:
        yield fake


@pytest.fixture
async def service(settings: Settings, fake_anthropic: FakeAnthropic) -> AsyncIterator[Service]:
    async with running_service(with_teams(settings, fake_anthropic)) as running:
        yield running


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
    ids=["missing", "garbage", "empty", "basic"],
)
async def test_without_a_valid_token_the_answer_is_401_and_nothing_is_stored(
    settings: Settings, connector: FakeBotConnector, headers: dict[str, str]
) -> None:
    secured = settings.model_copy(update={
        "teams_client_id": "00000000-0000-4000-8000-000000000b07",
        "teams_client_secret": SecretStr("not-used"), "teams_tenant_id": AAD_TENANT,
        "scheduler_enabled": False,
    })  # fmt: skip
    runtime, client = await start_service(secured)
    try:
        service = Service(runtime, client)
        response = await service.post(personal_message(connector.url, "let me in"), **headers)
        assert response.status == 401
        assert (await client.get("/healthz")).status == 200  # other routes need no token
        await service.settle()
        assert connector.calls == []
        for table in ("chat_sessions", "session_messages", "teams_conversations"):
            assert await service.count(table) == 0, table
    finally:
        await client.close()
        await runtime.stop()


async def test_a_malformed_activity_is_a_400(service: Service) -> None:
    response = await service.client.post("/api/messages", data="{not json",
                                         headers={"Content-Type": "application/json"})  # fmt: skip
    assert response.status == 400
    response = await service.post({"type": "message", "conversation": {"id": 12}})
    assert response.status == 400


async def test_an_internal_failure_is_a_500_with_a_reference_and_silence_in_the_chat(
    service: Service, connector: FakeBotConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> bool:
        raise RuntimeError("password=hunter2 in a driver message")

    monkeypatch.setattr(service.runtime.events, "claim", broken)
    response = await service.post(personal_message(connector.url, "hello"))
    assert response.status == 500
    body = await response.json()
    assert body["error"] == "internal error" and len(body["reference"]) == 8
    assert "hunter2" not in await response.text()
    await service.settle()
    assert connector.calls == []  # the SDK's default handler would have posted the exception
