"""What an operator's log collector reads with LOG_FORMAT=json: one object per line, each line
of a request's work with the request's id, down to the answer it started in the background; and
one access line per request (real app and Slack endpoint, fake Claude and Slack, embedded
PostgreSQL)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bot import logs
from bot.embeddings import HashEmbedder
from bot.runtime import Runtime
from bot.settings import Settings
from handlers.http import create_app
from handlers.slack import install
from storage.database import Database
from tests.support import TEST_DIMENSION
from tests.support.factories import add_document, add_user
from tests.support.fakes.anthropic_server import Fail, FakeAnthropic, Text
from tests.support.fakes.slack_api import FakeSlack
from tests.support.slack_requests import SIGNING_SECRET, dm_event, post_event


class JsonLines:
    """Everything logged while the test runs, as the JSON lines LOG_FORMAT=json writes."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def of(self, logger: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["logger"] == logger]


@pytest.fixture
def json_logs() -> Iterator[JsonLines]:
    captured = JsonLines()
    handler = logs.handler("json", captured.stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield captured
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@dataclass
class World:
    client: TestClient
    runtime: Runtime
    claude: FakeAnthropic


@pytest.fixture
async def world(
    settings: Settings, db: Database, fake_slack: FakeSlack, fake_anthropic: FakeAnthropic
) -> AsyncIterator[World]:
    slack_settings = settings.model_copy(update={
        "slack_bot_token": SecretStr("xoxb-test-token"),
        "slack_signing_secret": SecretStr(SIGNING_SECRET),
        "slack_api_url": fake_slack.url,
        "anthropic_api_key": SecretStr("sk-test"),
        "anthropic_base_url": fake_anthropic.url,
        "log_format": "json",
    })  # fmt: skip
    await add_user(db, "ana@example.com", ["sales"], slack_id="U-ANA")
    await add_document(db, HashEmbedder(TEST_DIMENSION), "sales", "Discount policy",
                       {"Approvals": "Discounts above 20 percent need the VP Sales"})  # fmt: skip
    runtime = Runtime(slack_settings)
    await runtime.start()
    app = create_app(runtime, [install])

    async def explode(request: web.Request) -> web.Response:
        raise RuntimeError("password=hunter2 leaked?")

    app.router.add_get("/explode", explode)
    async with TestClient(TestServer(app)) as client:
        yield World(client, runtime, fake_anthropic)
        await runtime.tasks.join()
    await runtime.stop()


async def test_the_answer_lines_carry_the_id_of_the_request_that_started_it(
    world: World, json_logs: JsonLines
) -> None:
    world.claude.script.append(Text("Ask the VP Sales above 20% [1]."))
    response = await post_event(world.client, dm_event("who approves discounts?"))
    await world.runtime.tasks.join()

    request_id = response.headers["X-Request-Id"]
    [access] = [a for a in json_logs.of("deskmate.access") if a["path"] == "/slack/events"]
    assert access["request_id"] == request_id
    assert (access["method"], access["status"]) == ("POST", 200)
    assert access["duration_ms"] >= 0
    # The answer ran after the ack, in a background task: its line still names the request.
    [answered] = json_logs.of("deskmate.conversation")
    assert answered["message"].startswith("slack message replied to: answered in ")
    assert answered["request_id"] == request_id


async def test_a_failing_answer_logs_its_warning_under_the_request_id(
    world: World, json_logs: JsonLines
) -> None:
    world.claude.script.append(Fail(400, error_type="invalid_request_error"))
    response = await post_event(world.client, dm_event("who approves discounts?"))
    await world.runtime.tasks.join()

    request_id = response.headers["X-Request-Id"]
    warnings = [line for line in json_logs.of("deskmate.conversation")
                if line["level"] == "WARNING"]  # fmt: skip
    assert warnings and warnings[0]["message"].startswith("LLM failed after 1 attempts")
    assert {line["request_id"] for line in json_logs.of("deskmate.conversation")} == {request_id}


async def test_a_sane_incoming_request_id_is_kept_and_another_is_replaced(
    world: World, json_logs: JsonLines
) -> None:
    kept = await world.client.get("/healthz", headers={"X-Request-Id": "lb-7f3a.42"})
    replaced = await world.client.get("/healthz", headers={"X-Request-Id": "x" * 300})
    fresh = await world.client.get("/healthz")

    assert kept.headers["X-Request-Id"] == "lb-7f3a.42"
    assert len(replaced.headers["X-Request-Id"]) == 16
    assert fresh.headers["X-Request-Id"] != replaced.headers["X-Request-Id"]
    ids = [line["request_id"] for line in json_logs.of("deskmate.access")]
    assert ids == [kept.headers["X-Request-Id"], replaced.headers["X-Request-Id"],
                   fresh.headers["X-Request-Id"]]  # fmt: skip


async def test_errors_and_unknown_routes_get_an_id_and_an_access_line_without_secrets(
    world: World, json_logs: JsonLines
) -> None:
    exploded = await world.client.get("/explode?token=s3cret")
    missing = await world.client.get("/nope")

    assert (exploded.status, missing.status) == (500, 404)
    [error] = json_logs.of("deskmate.errors")
    assert error["request_id"] == exploded.headers["X-Request-Id"]
    assert error["reference"] == (await exploded.json())["reference"]
    access = {line["path"]: line for line in json_logs.of("deskmate.access")}
    assert access["/explode"]["status"] == 500
    assert access["/nope"]["status"] == 404
    assert access["/nope"]["request_id"] == missing.headers["X-Request-Id"]
    # (aiohttp's own access log, which the test server keeps, is off in `deskmate serve`.)
    ours = [line for line in json_logs.lines if line["logger"] != "aiohttp.access"]
    assert "s3cret" not in json.dumps(ours)
