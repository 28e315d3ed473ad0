"""Teams on deskmate's own initiative: proactive posts (also after a restart), channel threads,
idempotency, throttling, card clicks and feedback, private command replies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.actions import Click, ClickResult
from bot.outbound import Action, DeliveryError, Outbound, Target
from bot.settings import Settings
from handlers.teams.sender import TeamsSender
from storage import tenants
from tests.support.fakes.anthropic_server import FakeAnthropic
from tests.support.fakes.bot_connector import (
    AAD_TENANT,
    CHANNEL_ID,
    PERSONAL_CHAT,
    Failure,
    FakeBotConnector,
    card_click,
    channel_message,
    personal_message,
    running_connector,
)
from tests.support.teams import (
    Service,
    quicken_streaming,
    running_service,
    start_service,
    with_teams,
)

# The SDK's own JWT middleware stores its result under a plain string key.
pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web.NotAppKeyWarning")

ALERT = Outbound(
    text="The LLM error rate is above 5% over 15 minutes.", title="🔥 LLM errors",
    fields=(("Value", "7.5%"), ("Threshold", "5%")),
    actions=(Action("Acknowledge", "test.ack", "17", style="primary"),),
)  # fmt: skip


@pytest.fixture(autouse=True)
def quick_streaming(monkeypatch: pytest.MonkeyPatch) -> None:
    quicken_streaming(monkeypatch)


@pytest.fixture
async def connector() -> AsyncIterator[FakeBotConnector]:
    async with running_connector() as fake:
        yield fake


@pytest.fixture
def teams_settings(settings: Settings, fake_anthropic: FakeAnthropic) -> Settings:
    return with_teams(settings, fake_anthropic)


@pytest.fixture
async def service(teams_settings: Settings) -> AsyncIterator[Service]:
    async with running_service(teams_settings) as running:
        yield running


def sender_of(service: Service) -> TeamsSender:
    sender = service.runtime.senders.get("teams")
    assert isinstance(sender, TeamsSender)
    return sender


async def seen(service: Service, activity: dict[str, Any], connector: FakeBotConnector) -> None:
    """Let Teams talk to deskmate once in a conversation, then forget what was sent."""
    await service.post(activity)
    await service.settle()
    connector.calls.clear()


def buttons(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [action for card in cards for action in card.get("actions", [])]


async def test_a_proactive_post_reaches_a_conversation_seen_before_a_restart(
    teams_settings: Settings, connector: FakeBotConnector
) -> None:
    runtime, client = await start_service(teams_settings)
    try:
        await Service(runtime, client).post(personal_message(connector.url, "hello"))
        await runtime.tasks.join()
    finally:
        await client.close()
        await runtime.stop()
    connector.calls.clear()

    runtime, client = await start_service(teams_settings)  # a new process on the same database
    try:
        delivery = await runtime.senders.get("teams").post(
            Target("teams", PERSONAL_CHAT), Outbound(text="Your weekly digest", title="Digest")
        )
    finally:
        await client.close()
        await runtime.stop()
    [posted] = connector.messages
    assert (posted.kind, posted.conversation_id) == ("send", PERSONAL_CHAT)
    assert posted.cards[0]["body"][0]["text"] == "Digest"
    assert delivery.message_id and delivery.thread is None


async def test_a_channel_post_starts_a_thread_that_follow_ups_go_into(
    service: Service, connector: FakeBotConnector
) -> None:
    await seen(service, channel_message(connector.url, "hi", activity_id="6001"), connector)
    sender = sender_of(service)
    delivery = await sender.post(Target("teams", CHANNEL_ID), ALERT)

    [created] = connector.of_kind("create")
    assert created.body["channelData"]["channel"]["id"] == CHANNEL_ID
    assert created.body["isGroup"] is True and created.body["tenantId"] == AAD_TENANT
    card = created.body["activity"]["attachments"][0]["content"]
    assert card["body"][0]["text"] == "🔥 LLM errors"
    assert {"title": "Value", "value": "7.5%"} in card["body"][2]["facts"]
    [ack] = card["actions"]
    assert ack["type"] == "Action.Execute" and ack["fallback"]["type"] == "Action.Submit"
    assert ack["data"] == ack["fallback"]["data"] == {"kind": "test.ack", "value": "17"}
    assert delivery.thread == delivery.message_id

    thread = Target("teams", CHANNEL_ID, thread=delivery.thread)
    await sender.post(thread, Outbound(text="Resolved: back below 5%."))
    [follow_up] = connector.of_kind("send")
    assert follow_up.conversation_id == f"{CHANNEL_ID};messageid={delivery.message_id}"

    # Alerts update their firing message knowing only the channel: the post is its thread.
    for where in (thread, Target("teams", CHANNEL_ID)):
        await sender.update(where, delivery.message_id, Outbound(text="Acknowledged by Sam"))
    puts = connector.of_kind("update")
    assert [p.activity_id for p in puts] == [delivery.message_id] * 2
    assert {p.conversation_id for p in puts} == {f"{CHANNEL_ID};messageid={delivery.message_id}"}
    assert puts[0].cards[0]["body"][0]["text"] == "Acknowledged by Sam"


async def test_a_channel_not_seen_yet_is_reached_through_a_known_conversation(
    service: Service, connector: FakeBotConnector
) -> None:
    await seen(service, personal_message(connector.url, "hello"), connector)
    await sender_of(service).post(Target("teams", "19:other@thread.tacv2"), ALERT)
    [created] = connector.of_kind("create")
    assert created.body["channelData"]["channel"]["id"] == "19:other@thread.tacv2"


async def test_without_any_conversation_a_post_is_a_permanent_delivery_error(
    service: Service, connector: FakeBotConnector
) -> None:
    with pytest.raises(DeliveryError) as caught:
        await sender_of(service).post(Target("teams", PERSONAL_CHAT), ALERT)
    assert caught.value.retryable is False
    # Conversations belong to the tenant they were seen in: another tenant cannot use them.
    await seen(service, personal_message(connector.url, "hello"), connector)
    async with service.runtime.db.pool.acquire() as conn:
        await tenants.ensure_tenant(conn, "acme", "Acme")
    with pytest.raises(DeliveryError):
        await sender_of(service).post(Target("teams", PERSONAL_CHAT, tenant="acme"), ALERT)
    assert connector.calls == []


async def test_a_retried_post_with_the_same_key_posts_once(
    service: Service, connector: FakeBotConnector
) -> None:
    await seen(service, channel_message(connector.url, "hi"), connector)
    keyed = Outbound(text="Digest", idempotency_key="schedule:3:2026-11-22T09:00")
    first = await sender_of(service).post(Target("teams", CHANNEL_ID), keyed)
    again = await sender_of(service).post(Target("teams", CHANNEL_ID), keyed)
    assert again == first
    assert len(connector.of_kind("create")) == 1
    assert (
        await sender_of(service).find(Target("teams", CHANNEL_ID), keyed.idempotency_key) == first
    )


async def test_throttling_is_waited_out_and_refusals_become_delivery_errors(
    service: Service, connector: FakeBotConnector
) -> None:
    await seen(service, personal_message(connector.url, "hello"), connector)
    target, message = Target("teams", PERSONAL_CHAT), Outbound(text="Digest")
    connector.failures = [Failure(429, retry_after="0"), Failure(412, "0"), Failure(502, "0")]
    await sender_of(service).post(target, message)
    assert [c.kind for c in connector.calls] == ["failed-send"] * 3 + ["send"]

    connector.failures = [Failure(403)]
    with pytest.raises(DeliveryError) as refused:
        await sender_of(service).post(target, message)
    assert refused.value.retryable is False and "403" in str(refused.value)

    connector.failures = [Failure(504, retry_after="0")] * 4
    with pytest.raises(DeliveryError) as busy:
        await sender_of(service).post(target, message)
    assert busy.value.retryable is True


@pytest.mark.parametrize("execute", [True, False], ids=["Action.Execute", "Action.Submit"])
async def test_a_card_click_is_dispatched_answered_and_updates_the_card(
    service: Service, connector: FakeBotConnector, execute: bool
) -> None:
    clicks: list[Click] = []

    async def acknowledge(click: Click) -> ClickResult:
        clicks.append(click)
        return ClickResult("Acknowledged — thanks!",
                           replace_with=Outbound(text="Acknowledged by Sam Seller"))  # fmt: skip

    service.runtime.actions.register("test.ack", acknowledge)
    await seen(service, personal_message(connector.url, "hello"), connector)
    delivery = await sender_of(service).post(Target("teams", PERSONAL_CHAT), ALERT)
    [data] = [b["data"] for b in buttons(connector.messages[0].cards)]
    connector.calls.clear()

    response = await service.post(card_click(connector.url, data, card_id=delivery.message_id,
                                             execute=execute))  # fmt: skip
    if execute:
        assert response.status == 200
        assert await response.json() == {
            "statusCode": 200, "type": "application/vnd.microsoft.activity.message",
            "value": "Acknowledged — thanks!",
        }  # fmt: skip
    else:
        assert response.status == 202
    await service.settle()

    [click] = clicks
    assert (click.kind, click.value, click.platform) == ("test.ack", "17", "teams")
    assert (click.user_id, click.workspace_id) == ("aad-sam", AAD_TENANT)
    [put] = connector.of_kind("update")
    assert put.activity_id == delivery.message_id
    assert put.cards[0]["body"][0]["text"] == "Acknowledged by Sam Seller"
    said = [c.cards[0]["body"][0]["text"] for c in connector.messages]
    assert said == ([] if execute else ["Acknowledged — thanks!"])


async def test_the_feedback_buttons_record_a_rating(
    service: Service, connector: FakeBotConnector
) -> None:
    await service.post(personal_message(connector.url, "When does Lyon open?"))
    await service.settle()
    answer = connector.messages[-1]
    down = next(b["data"] for b in buttons(answer.cards) if b["data"]["value"].endswith(":down"))

    response = await service.post(card_click(connector.url, down, card_id="answer-1"))
    assert response.status == 200
    assert (await response.json())["value"] == "Thanks — I'll use that to do better."
    await service.settle()
    async with service.runtime.db.pool.acquire() as conn:
        rows = await conn.fetch("SELECT message_id, rating FROM answer_feedback")
    assert [(str(r["message_id"]), r["rating"]) for r in rows] == [(down["value"][:-5], -1)]
    assert connector.of_kind("update") == []  # feedback leaves the answer as it is


async def test_an_unknown_button_tells_the_clicker(
    service: Service, connector: FakeBotConnector
) -> None:
    response = await service.post(card_click(connector.url, {"kind": "nope", "value": "1"},
                                             card_id="c1"))  # fmt: skip
    assert (await response.json())["value"] == "unknown button 'nope'"


async def test_a_command_in_a_channel_is_answered_in_a_personal_chat(
    service: Service, connector: FakeBotConnector
) -> None:
    await service.post(channel_message(connector.url, "memories", activity_id="7001"))
    await service.settle()
    [created] = connector.of_kind("create")
    assert created.body["members"] == [{"id": "29:sam"}] and created.body["isGroup"] is False
    private, note = connector.messages
    assert private.conversation_id.startswith("a:personal-")
    assert "remember" in private.text
    assert note.conversation_id == f"{CHANNEL_ID};messageid=7001"
    assert note.text == "I've sent you that in our personal chat."


async def test_a_real_alert_is_acknowledged_from_its_card(
    service: Service, connector: FakeBotConnector
) -> None:
    from storage.alerts import NewRule

    await seen(service, personal_message(connector.url, "hello"), connector)
    rule = NewRule(
        name="Any traffic",
        metric_type="query_volume",
        condition="gte",
        threshold=0,
        notification_channels=(f"teams:{PERSONAL_CHAT}",),
    )
    await service.runtime.alert_rules.add("default", rule)
    await service.runtime.alert_evaluator.run_due()
    [posted] = connector.messages
    [ack] = [b["data"] for b in buttons(posted.cards)]
    assert ack["kind"] == "alert.ack"
    async with service.runtime.db.pool.acquire() as conn:
        sent = await conn.fetchval("SELECT notifications_sent FROM alert_instances")
    card_id = sent[0]["message_id"]
    connector.calls.clear()

    response = await service.post(card_click(connector.url, ack, card_id=card_id))
    assert response.status == 200
    await service.settle()
    async with service.runtime.db.pool.acquire() as conn:
        acknowledged_by = await conn.fetchval("SELECT acknowledged_by FROM alert_instances")
    assert acknowledged_by is not None
    updates = connector.of_kind("update")
    assert updates and all(not buttons(u.cards) for u in updates)  # the button is gone
    assert "Acknowledged by" in str(updates[-1].cards)
