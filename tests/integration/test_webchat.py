"""The web chat's HTTP API on the real database with the demo organisation: sending, streamed
answers with sources, channels and their clearances, and bad input that stores nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bot import demo
from bot.messages import IncomingMessage
from bot.runtime import Runtime
from bot.settings import Settings
from handlers.http import RUNTIME, create_app
from handlers.webchat import install
from tests.support.fakes.anthropic_server import FakeAnthropic, Text
from tests.support.webchat import ALEX, ELI, HANA, ask, listen, table_counts

SALARY = "What is the salary band for level L5 engineers?"
DISCOUNT = "Who approves a B2B discount above 10 percent of list price?"


async def _client(settings: Settings) -> AsyncIterator[TestClient]:
    runtime = Runtime(settings)
    await runtime.start()
    try:
        await demo.seed(runtime)
        async with TestClient(TestServer(create_app(runtime, [install]))) as client:
            yield client
    finally:
        await runtime.stop()


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient]:
    async for test_client in _client(settings):
        yield test_client


@pytest.fixture
async def claude_client(
    settings: Settings, fake_anthropic: FakeAnthropic
) -> AsyncIterator[TestClient]:
    with_claude = settings.model_copy(update={
        "anthropic_api_key": SecretStr("sk-test"), "anthropic_base_url": fake_anthropic.url,
    })  # fmt: skip
    async for test_client in _client(with_claude):
        yield test_client


async def test_the_page_and_its_scripts_are_served(client: TestClient) -> None:
    page = await client.get("/")
    assert page.status == 200
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    html = await page.text()
    assert '<select id="user"' in html and "/webchat/static/app.js" in html
    for asset in ("app.js", "render.js", "markdown.js", "style.css"):
        assert (await client.get(f"/webchat/static/{asset}")).status == 200


async def test_users_channels_and_mode(client: TestClient) -> None:
    users = (await (await client.get("/webchat/api/users")).json())["users"]
    alex = next(u for u in users if u["email"] == ALEX)
    assert alex == {"email": ALEX, "name": "Alex Martin", "departments": ["sales"],
                    "head_of": ["sales"], "super_user": False}  # fmt: skip
    channels = (await (await client.get("/webchat/api/channels")).json())["channels"]
    assert [(c["id"], c["departments"], c["public"]) for c in channels] == [
        ("#general", ["general"], True),
        ("#engineering", ["engineering"], False),
        ("#hr-team", ["hr"], False),
        ("#ops", ["engineering"], False),
        ("#sales", ["sales"], False),
    ]
    info = await (await client.get("/webchat/api/info")).json()
    assert info["llm"] == "offline" and "web" in info["platforms"]


async def test_a_dm_answer_streams_with_sources_and_comes_back_today(client: TestClient) -> None:
    async with listen(client, HANA) as events:
        sent = await ask(client, HANA, "How many weeks of parental leave does a primary carer get?")
        assert sent["answering"] is True
        question = sent["post"]
        answer = await events.post(reply_to=question["id"])
    assert events.deltas(question["id"]) == answer["text"]  # the page saw it being written
    assert answer["status"] == "offline" and "16 weeks" in answer["text"]
    assert answer["sources"][0]["label"] == "Leave Policy › Parental leave"
    assert answer["sources"][0]["department"] == "hr" and isinstance(answer["feedback"], int)

    history = await client.get("/webchat/api/history", params={"user": HANA})
    turns = (await history.json())["posts"]
    assert [t["author"]["kind"] for t in turns] == ["user", "bot"]
    assert turns[0]["text"].startswith("How many weeks") and turns[1]["text"] == answer["text"]
    assert turns[1]["sources"][0]["label"] == "Leave Policy › Parental leave"
    assert turns[1]["feedback"] == answer["feedback"]


async def test_a_dm_answer_streams_from_claude(
    claude_client: TestClient, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script.append(Text("Primary carers get **16 weeks** on full pay [1]."))
    async with listen(claude_client, HANA) as events:
        sent = await ask(claude_client, HANA, "How long is parental leave for the primary carer?")
        answer = await events.post(reply_to=sent["post"]["id"])
    assert answer["status"] == "answered"
    assert answer["text"] == "Primary carers get **16 weeks** on full pay [1]."
    assert len(events.pieces(sent["post"]["id"])) > 1  # streamed in pieces
    assert answer["sources"][0]["label"].startswith("Leave Policy")
    assert "Runs payroll" in fake_anthropic.prompt_text()  # her memory, in a DM


async def test_feedback_on_an_answer_is_recorded(client: TestClient) -> None:
    async with listen(client, ALEX) as events:
        sent = await ask(client, ALEX, DISCOUNT)
        answer = await events.post(reply_to=sent["post"]["id"])
    value = f"{answer['feedback']}:up"
    clicked = await client.post(
        "/webchat/api/actions", json={"user": ALEX, "kind": "feedback", "value": value}
    )
    assert clicked.status == 200
    assert (await clicked.json()) == {"text": "Thanks for the feedback!", "post": None}
    async with client.app[RUNTIME].db.pool.acquire() as conn:
        rating = await conn.fetchval("SELECT rating FROM answer_feedback")
    assert rating == 1


async def _channel_answer(
    client: TestClient, email: str, text: str, channel: str = "sales"
) -> dict:
    async with listen(client, email, channel=channel) as events:
        sent = await ask(client, email, f"@deskmate {text}", channel=channel)
        assert sent["answering"] is True
        return await events.post(reply_to=sent["post"]["id"])


async def test_channel_answers_follow_the_channel_clearance(client: TestClient) -> None:
    hr_in_sales = await _channel_answer(client, HANA, SALARY)
    assert all(s["department"] != "hr" for s in hr_in_sales["sources"])
    assert "Salary Bands" not in hr_in_sales["text"]
    assert "Runs payroll" not in hr_in_sales["text"]  # no memories in a channel

    sales_in_sales = await _channel_answer(client, ALEX, DISCOUNT)
    assert "sales" in {s["department"] for s in sales_in_sales["sources"]}
    assert "Discount Policy" in sales_in_sales["text"]

    hr_in_hr = await _channel_answer(client, HANA, SALARY, channel="hr-team")
    assert hr_in_hr["sources"][0]["label"].startswith("Salary Bands 2026")
    sales_in_hr = await _channel_answer(client, ALEX, SALARY, channel="hr-team")
    assert all(s["department"] != "hr" for s in sales_in_hr["sources"])  # not alex's to read


async def test_web_channels_get_exactly_the_slack_channel_acl(client: TestClient) -> None:
    """The same person and question in #sales and in a Slack channel with the same clearance
    cite the same passages."""
    runtime = client.app[RUNTIME]
    from bot.directory import Directory

    await Directory(runtime.db, actor="test").map_channel("default", "slack", "C-SALES", "sales")
    for email, question in ((HANA, SALARY), (ALEX, DISCOUNT), (ELI, SALARY)):
        web = await _channel_answer(client, email, question)
        slack = await runtime.conversation.handle(IncomingMessage(
            platform="slack", user_id="U-X", trusted_email=email, conversation_id="C-SALES",
            thread_id="1.2", text=question, is_direct=False,
        ))  # fmt: skip
        assert [s["label"] for s in web["sources"]] == [s.label for s in slack.sources]


async def test_channel_chatter_without_a_mention_is_posted_not_answered(
    client: TestClient,
) -> None:
    async with listen(client, ELI, channel="sales") as events:
        sent = await ask(client, ALEX, "Morning all, the Lyon deal closed!", channel="#sales")
        seen = await events.post()
    assert sent["answering"] is False and seen["id"] == sent["post"]["id"]
    assert seen["author"] == {"kind": "user", "name": "Alex Martin", "email": ALEX}
    history = await client.get("/webchat/api/history", params={"user": ELI, "channel": "sales"})
    assert [p["text"] for p in (await history.json())["posts"]] == [
        "Morning all, the Lyon deal closed!"
    ]
    assert (await table_counts(client))["session_messages"] == 0


async def test_a_command_reply_in_a_channel_reaches_only_the_asker(client: TestClient) -> None:
    async with listen(client, HANA, channel="sales") as hers, \
            listen(client, ALEX, channel="sales") as his:  # fmt: skip
        sent = await ask(client, HANA, "@deskmate memories", channel="sales")
        reply = await hers.post(reply_to=sent["post"]["id"])
        await ask(client, ALEX, "after", channel="sales")
        await his.post(text="after")
    assert reply["ephemeral"] is True and "Runs payroll" in reply["text"]
    assert not any("Runs payroll" in e.get("text", "") for _, e in his.seen)
    posts = await client.get("/webchat/api/history", params={"user": ALEX, "channel": "sales"})
    assert [p["text"] for p in (await posts.json())["posts"]] == ["@deskmate memories", "after"]


BAD_INPUT = [
    ({"user": ALEX, "text": ""}, 400, "'text' must be a non-empty string"),
    ({"user": ALEX, "text": "   \n"}, 400, "'text' must be a non-empty string"),
    ({"user": ALEX, "text": "x" * 100_000}, 413, "'text' is longer than 10,000 characters"),
    ({"user": "nobody@example.com", "text": "hi"}, 404, "no active user with email"),
    ({"user": ALEX, "text": "hi", "channel": "#nope"}, 404, "there is no web channel #nope"),
    ({"user": ALEX, "text": "hi", "channel": "<b>"}, 400, "is not a channel name"),
    ({"user": ALEX, "text": 42}, 400, "'text' must be a non-empty string"),
    (["not", "an", "object"], 400, "the body must be a JSON object"),
]


@pytest.mark.parametrize(("body", "status", "error"), BAD_INPUT)
async def test_bad_input_gets_a_clear_4xx_and_stores_nothing(
    client: TestClient, body: object, status: int, error: str
) -> None:
    response = await client.post("/webchat/api/messages", json=body)
    assert response.status == status
    assert error in (await response.json())["error"]
    assert await table_counts(client) == {"webchat_posts": 0, "session_messages": 0,
                                          "chat_sessions": 0}  # fmt: skip


@pytest.mark.parametrize(
    ("data", "content_type", "status", "error"),
    [
        ('{"user": "a", "text": ', "application/json", 400, "the body is not valid JSON"),
        (b"\xff\xfe", "application/json", 400, "the body is not valid JSON"),
        ("user=a&text=hi", "application/x-www-form-urlencoded", 415, "application/json"),
    ],
)
async def test_malformed_bodies_get_a_clear_4xx(
    client: TestClient, data: str | bytes, content_type: str, status: int, error: str
) -> None:
    response = await client.post(
        "/webchat/api/messages", data=data, headers={"Content-Type": content_type}
    )
    assert response.status == status
    assert error in (await response.json())["error"]
    assert (await table_counts(client))["webchat_posts"] == 0


async def test_streams_and_history_need_a_known_user(client: TestClient) -> None:
    for path in ("stream", "history"):
        response = await client.get(f"/webchat/api/{path}", params={"user": "ghost@example.com"})
        assert response.status == 404
        assert (await response.json())["error"] == "no active user with email ghost@example.com"


async def test_suggested_questions_are_about_handbooks_the_person_may_read(
    client: TestClient,
) -> None:
    async def suggested(email: str) -> list[str]:
        response = await client.get("/webchat/api/suggestions", params={"user": email})
        assert response.status == 200
        return list((await response.json())["suggestions"])

    runtime = client.app[RUNTIME]
    async with runtime.db.pool.acquire() as conn:
        titles = dict(await conn.fetch("SELECT title, department FROM documents"))
    for email, own in ((HANA, "hr"), (ALEX, "sales"), (ELI, "engineering")):
        questions = await suggested(email)
        assert questions, email
        asked_about = [d for q in questions for t, d in titles.items() if f"the {t} handbook" in q]
        assert len(asked_about) == len(questions), questions
        assert set(asked_about) <= {own, "general"}, (email, questions)
        assert asked_about[0] == own  # their own department's handbook first
