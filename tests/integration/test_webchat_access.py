"""Who may use the web chat (loopback, token, off) on the real app and this test's database, and
what `deskmate serve` says about it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bot.runtime import Runtime
from bot.settings import Settings
from deskmate.serve import _announce
from handlers.http import RUNTIME, create_app
from handlers.webchat import Access, access_mode, describe, install


def test_access_depends_on_the_bind_address_and_the_token(settings: Settings) -> None:
    with_token = settings.model_copy(update={"webchat_token": SecretStr("s3cret")})
    assert access_mode("127.0.0.1", settings) is Access.OPEN
    assert access_mode("127.0.0.1", with_token) is Access.OPEN
    assert access_mode("0.0.0.0", with_token) is Access.TOKEN
    assert access_mode("0.0.0.0", settings) is Access.DISABLED
    assert describe("0.0.0.0", 3000, settings).startswith("off: 0.0.0.0 is not a loopback")
    assert "s3cret" not in describe("0.0.0.0", 3000, with_token)


async def _client(settings: Settings, host: str) -> AsyncIterator[TestClient]:
    runtime = Runtime(settings)
    await runtime.start()
    try:
        async with TestClient(TestServer(create_app(runtime, [install], host=host))) as client:
            yield client
    finally:
        await runtime.stop()


@pytest.fixture
async def open_client(settings: Settings) -> AsyncIterator[TestClient]:
    async for client in _client(settings, "127.0.0.1"):
        yield client


@pytest.fixture
async def token_client(settings: Settings) -> AsyncIterator[TestClient]:
    guarded = settings.model_copy(update={"webchat_token": SecretStr("s3cret")})
    async for client in _client(guarded, "0.0.0.0"):
        yield client


async def test_on_loopback_only_localhost_names_are_answered(open_client: TestClient) -> None:
    assert (await open_client.get("/webchat/api/users")).status == 200
    rebound = await open_client.get("/webchat/api/users", headers={"Host": "evil.example:3000"})
    assert rebound.status == 403
    assert (await rebound.json())["error"] == "the web chat answers on localhost addresses only"
    assert (await open_client.get("/", headers={"Host": "evil.example"})).status == 403


async def test_a_token_is_needed_off_loopback(token_client: TestClient) -> None:
    page = await token_client.get("/")
    assert page.status == 401 and "WEBCHAT_TOKEN" in await page.text()
    assert (await token_client.get("/webchat/api/users")).status == 401
    wrong = {"Authorization": "Bearer nope"}
    assert (await token_client.get("/webchat/api/users", headers=wrong)).status == 401
    right = {"Authorization": "Bearer s3cret"}
    assert (await token_client.get("/webchat/api/users", headers=right)).status == 200


async def test_the_token_in_the_url_becomes_a_cookie_once(token_client: TestClient) -> None:
    opened = await token_client.get("/?token=s3cret", allow_redirects=False)
    assert opened.status == 303 and opened.headers["Location"] == "/"
    cookie = opened.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert (await token_client.get("/")).status == 200  # the cookie jar sends it now
    assert (await token_client.get("/webchat/api/channels")).status == 200


async def test_without_a_token_off_loopback_the_web_chat_is_off(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="deskmate.webchat"):
        async for client in _client(settings, "0.0.0.0"):
            page = await client.get("/")
            assert page.status == 403 and "web chat is off" in await page.text()
            assert (await client.get("/webchat/api/users")).status == 404
            assert "web" not in client.app[RUNTIME].senders.platforms
    assert "web chat disabled: 0.0.0.0 is not a loopback address" in caplog.text


def _lines(settings: Settings, host: str, capsys: pytest.CaptureFixture[str]) -> str:
    _announce(settings, SimpleNamespace(db=SimpleNamespace(embedded=True)), host, 3000)  # type: ignore[arg-type]
    return capsys.readouterr().out


def test_start_up_lines_say_where_to_click_and_what_is_on(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _lines(settings, "127.0.0.1", capsys)
    assert out.splitlines()[0] == "deskmate is listening on http://127.0.0.1:3000/"
    assert "web chat:       http://127.0.0.1:3000/  (this machine only" in out
    assert f"data directory: {settings.data_dir} (embedded PostgreSQL)" in out
    assert "platforms:      web chat on, Slack off, Teams off" in out
    assert "language model: offline" in out
    off = _lines(settings, "0.0.0.0", capsys)
    assert "web chat:       off: 0.0.0.0 is not a loopback address" in off
    assert "web chat off" in off
    claude = settings.model_copy(update={"anthropic_api_key": SecretStr("sk-x")})
    assert "language model: Claude (claude-sonnet-4-6)" in _lines(claude, "::1", capsys)
