"""Proactive posts into web channels (WebSender) and their buttons, on the real app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot import demo
from bot.actions import Click, ClickResult
from bot.messages import Source
from bot.outbound import Action, Delivery, DeliveryError, Outbound, Sender, Target
from bot.runtime import Runtime
from bot.settings import Settings
from handlers.http import RUNTIME, create_app
from handlers.webchat import install
from tests.support.webchat import ALEX, ELI, listen

ALERT = Outbound(
    text="LLM error rate is **12%** (threshold 5%) over the last 15 minutes.",
    title="🔴 Alert firing: LLM error rate",
    fields=(("Severity", "critical"), ("Value", "12%")),
    sources=(Source(1, "On-call runbook", "Escalation", "engineering", 3, 9, "Page the lead"),),
    actions=(Action("Acknowledge", "alert.ack", "instance-7", style="primary"),),
    idempotency_key="alert:7:fired",
)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient]:
    runtime = Runtime(settings)
    await runtime.start()
    try:
        await demo.seed(runtime)
        async with TestClient(TestServer(create_app(runtime, [install]))) as test_client:
            yield test_client
    finally:
        await runtime.stop()


def _sender(client: TestClient) -> Sender:
    return client.app[RUNTIME].senders.get("web")


async def test_a_post_by_the_sender_reaches_open_pages_and_is_kept(client: TestClient) -> None:
    async with listen(client, ELI, channel="engineering") as events:
        delivery = await _sender(client).post(Target.parse("web:#engineering"), ALERT)
        shown = await events.post()
    assert shown["id"] == f"p{delivery.message_id}"
    assert shown["title"] == "🔴 Alert firing: LLM error rate"
    assert shown["fields"] == [["Severity", "critical"], ["Value", "12%"]]
    assert shown["actions"] == [{"label": "Acknowledge", "kind": "alert.ack",
                                 "value": "instance-7", "style": "primary"}]  # fmt: skip
    assert shown["sources"][0]["label"] == "On-call runbook › Escalation"
    assert shown["author"]["kind"] == "bot" and shown["feedback"] is None

    later = await client.get(
        "/webchat/api/history", params={"user": ALEX, "channel": "#engineering"}
    )
    assert [p["id"] for p in (await later.json())["posts"]] == [shown["id"]]


async def test_a_retried_delivery_posts_once(client: TestClient) -> None:
    first = await _sender(client).post(Target.parse("web:#sales"), ALERT)
    again = await _sender(client).post(Target.parse("web:#sales"), ALERT)
    assert first == again
    history = await client.get("/webchat/api/history", params={"user": ALEX, "channel": "sales"})
    assert len((await history.json())["posts"]) == 1


async def test_find_returns_the_post_made_with_the_key_in_that_channel(client: TestClient) -> None:
    sender, sales = _sender(client), Target.parse("web:#sales")
    assert await sender.find(sales, "alert:7:fired") is None  # nothing posted yet
    before = await sender.post(sales, replace(ALERT, idempotency_key="alert:6:fired"))
    posted = await sender.post(sales, ALERT)
    await sender.post(sales, replace(ALERT, idempotency_key="alert:8:fired"))
    elsewhere = await sender.post(Target.parse("web:#engineering"), ALERT)  # same key
    assert len({before.message_id, posted.message_id, elsewhere.message_id}) == 3
    assert await sender.find(sales, "alert:7:fired") == posted
    assert await sender.find(Target("web", "sales"), "alert:7:fired") == posted  # "#" optional
    assert await sender.find(Target.parse("web:#engineering"), "alert:7:fired") == elsewhere
    assert await sender.find(sales, "alert:9:fired") is None
    in_thread = Target("web", "#sales", thread=before.message_id)
    assert await sender.find(in_thread, "alert:7:fired") == Delivery(
        posted.message_id, thread=before.message_id
    )


async def test_a_follow_up_goes_to_the_thread_and_a_new_channel_appears(
    client: TestClient,
) -> None:
    first = await _sender(client).post(Target.parse("web:#incidents"), ALERT)
    resolved = Outbound(text="Resolved: error rate back to 1%.", title="✅ Resolved")
    thread = Target("web", "#incidents", thread=first.thread)
    follow = await _sender(client).post(thread, resolved)
    channels = (await (await client.get("/webchat/api/channels")).json())["channels"]
    new = {"id": "#incidents", "name": "incidents", "departments": [], "public": False}
    assert new in channels
    history = await client.get(
        "/webchat/api/history", params={"user": ALEX, "channel": "incidents"}
    )
    posts = (await history.json())["posts"]
    assert posts[1]["reply_to"] == f"p{first.message_id}" and follow.thread == first.thread
    edited = Outbound(text="Resolved at 09:12.", title="✅ Resolved")
    await _sender(client).update(Target("web", "#incidents"), follow.message_id, edited)
    history = await client.get(
        "/webchat/api/history", params={"user": ALEX, "channel": "incidents"}
    )
    assert (await history.json())["posts"][1]["reply_to"] == f"p{first.message_id}"  # kept


@pytest.mark.parametrize(
    "target",
    [Target("web", "sales channel"), Target("slack", "C1"), Target("web", "#sales", tenant="acme")],
    ids=["not-a-channel", "not-web", "unknown-tenant"],
)
async def test_bad_targets_are_refused_without_retry(client: TestClient, target: Target) -> None:
    with pytest.raises(DeliveryError) as refused:
        await _sender(client).post(target, ALERT)
    assert refused.value.retryable is False
    with pytest.raises(DeliveryError):
        await _sender(client).update(target, "1", ALERT)
    with pytest.raises(DeliveryError) as refused:
        await _sender(client).find(target, "alert:7:fired")
    assert refused.value.retryable is False


async def test_a_click_on_an_action_button_dispatches_and_replaces_the_post(
    client: TestClient,
) -> None:
    clicks: list[Click] = []

    async def acknowledge(click: Click) -> ClickResult:
        clicks.append(click)
        done = Outbound(text="Acknowledged by Alex Martin.", title="🟡 Alert acknowledged")
        return ClickResult("You acknowledged the alert.", replace_with=done)

    client.app[RUNTIME].actions.register("alert.ack", acknowledge)
    delivery = await _sender(client).post(Target.parse("web:#sales"), ALERT)
    async with listen(client, ELI, channel="sales") as events:
        clicked = await client.post("/webchat/api/actions", json={
            "user": ALEX, "kind": "alert.ack", "value": "instance-7",
            "post": int(delivery.message_id),
        })  # fmt: skip
        update = await events.wait(lambda name, _: name == "update")
    assert clicked.status == 200
    body = await clicked.json()
    assert body["text"] == "You acknowledged the alert."
    assert body["post"] == update and update["title"] == "🟡 Alert acknowledged"
    assert update["actions"] == []
    assert clicks == [
        Click(kind="alert.ack", value="instance-7", platform="web", user_id=ALEX, email=ALEX,
              display_name="Alex Martin", trusted_email=ALEX)
    ]  # fmt: skip


async def test_clicks_on_buttons_that_are_not_there_are_refused(client: TestClient) -> None:
    delivery = await _sender(client).post(Target.parse("web:#sales"), ALERT)
    post = int(delivery.message_id)
    cases = [
        ({"kind": "alert.ack", "value": "instance-8", "post": post}, 400, "not on this post"),
        ({"kind": "alert.ack", "value": "instance-7", "post": post + 99}, 404, "no post"),
        ({"kind": "launch", "value": "x"}, 404, "unknown button 'launch'"),
        ({"kind": "feedback", "value": "12:sideways"}, 400, "bad feedback value"),
        ({"kind": "feedback", "value": "1:up", "post": "1"}, 400, "'post' must be a post id"),
    ]
    for body, status, error in cases:
        response = await client.post("/webchat/api/actions", json={"user": ALEX, **body})
        assert response.status == status, body
        assert error in (await response.json())["error"]


async def test_an_answer_that_fails_tells_the_asker(client: TestClient) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database on fire")

    client.app[RUNTIME].conversation.handle = broken  # type: ignore[method-assign]
    async with listen(client, ALEX) as events:
        response = await client.post("/webchat/api/messages", json={"user": ALEX, "text": "hi"})
        failure = await events.wait(lambda name, _: name == "error")
    assert failure["reply_to"] == (await response.json())["post"]["id"]
    assert failure["text"].startswith("Sorry — something went wrong on my side (reference ")
    assert "fire" not in failure["text"]
