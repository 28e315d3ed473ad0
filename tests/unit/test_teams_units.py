"""Teams, the pieces: activity parsing, cards, text splitting, pacing and retries (no I/O)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from microsoft_agents.activity import Activity

from bot.messages import Reply, ReplyStatus, Source
from bot.outbound import Action, Outbound
from handlers.teams.activities import (
    click_from_activity,
    conversation_record,
    message_from_activity,
    split_conversation_id,
    thread_conversation_id,
)
from handlers.teams.cards import answer_card, outbound_card, split_text
from handlers.teams.connector import (
    ConversationPacer,
    delivery_error,
    retry_after_seconds,
    retry_delay,
    with_retries,
)
from handlers.teams.references import guess_kind
from handlers.teams.reply import StreamBudget
from tests.support.fakes.bot_connector import (
    AAD_TENANT,
    BOT_ID,
    CHANNEL_ID,
    TEAM_ID,
    card_click,
    channel_message,
    personal_message,
)

URL = "http://127.0.0.1:9/"


def activity(payload: dict[str, Any]) -> Activity:
    return Activity.model_validate(payload)


# --- reading activities ------------------------------------------------------------------------


def test_conversation_ids_and_threads() -> None:
    assert split_conversation_id(f"{CHANNEL_ID};messageid=17") == (CHANNEL_ID, "17")
    assert split_conversation_id("a:chat") == ("a:chat", None)
    assert thread_conversation_id(CHANNEL_ID, "17") == f"{CHANNEL_ID};messageid=17"
    assert thread_conversation_id("a:chat", None) == "a:chat"


def test_a_personal_message_becomes_a_direct_incoming_message() -> None:
    message = message_from_activity(activity(personal_message(URL, " What is  the  policy? ")))
    assert message is not None and message.kind == "personal"
    incoming = message.incoming
    assert (incoming.platform, incoming.user_id, incoming.workspace_id) == (
        "teams", "aad-sam", AAD_TENANT)  # fmt: skip
    assert incoming.is_direct and incoming.thread_id is None
    assert incoming.text == "What is the policy?"
    assert message.event_key == "a:1personal-chat-sam:1001"


def test_a_channel_mention_loses_the_mention_and_keeps_its_thread() -> None:
    payload = channel_message(URL, "ask <at>Bob Lee</at> &amp; me&nbsp;<p>please</p>",
                              activity_id="12", root="10")  # fmt: skip
    message = message_from_activity(activity(payload))
    assert message is not None and message.kind == "channel"
    incoming = message.incoming
    assert incoming.text == "ask Bob Lee & me please"
    assert (incoming.conversation_id, incoming.thread_id) == (CHANNEL_ID, "10")
    assert not incoming.is_direct and incoming.message_id == "12"


@pytest.mark.parametrize(
    "payload",
    [
        channel_message(URL, "just chatting", mention=False),
        personal_message(URL, "mine", sender={"id": BOT_ID, "name": "deskmate"}),
        personal_message(URL, "beep", sender={"id": "28:other-bot", "name": "Other"}),
        personal_message(URL, "   "),
        {**personal_message(URL, "edited"), "type": "messageUpdate"},
    ],
    ids=["unmentioned", "own", "other-bot", "empty", "edit"],
)
def test_what_deskmate_stays_silent_on(payload: dict[str, Any]) -> None:
    assert message_from_activity(activity(payload)) is None


@pytest.mark.parametrize("execute", [True, False])
def test_a_card_click_becomes_a_click(execute: bool) -> None:
    payload = card_click(URL, {"kind": "alert.ack", "value": "9", "msteams": {}}, card_id="55",
                         execute=execute)  # fmt: skip
    click = click_from_activity(activity(payload))
    assert click is not None
    assert (click.kind, click.value, click.user_id, click.workspace_id) == (
        "alert.ack", "9", "aad-sam", AAD_TENANT)  # fmt: skip


def test_a_message_with_text_is_not_a_click() -> None:
    payload = {**personal_message(URL, "hello"), "value": {"kind": "alert.ack"}}
    assert click_from_activity(activity(payload)) is None


def test_a_channel_is_remembered_by_its_channel_id_without_the_asker() -> None:
    record = conversation_record(activity(channel_message(URL, "hi", root="10")))
    assert record is not None
    assert (record.conversation_id, record.conversation_type) == (CHANNEL_ID, "channel")
    assert (record.team_id, record.aad_tenant_id, record.service_url) == (TEAM_ID, AAD_TENANT, URL)
    assert record.reference["conversation"]["id"] == CHANNEL_ID
    assert "user" not in record.reference and "activityId" not in record.reference
    personal = conversation_record(activity(personal_message(URL, "hi")))
    assert personal is not None and personal.reference["user"]["id"] == "29:sam"


def test_kinds_of_conversation_ids_not_seen_yet() -> None:
    assert guess_kind("19:abc@thread.tacv2") == "channel"
    assert guess_kind("19:abc@thread.v2") == "groupChat"
    assert guess_kind("a:1xyz") == "personal"


# --- rendering ---------------------------------------------------------------------------------


def test_split_text_cuts_at_paragraphs_and_respects_the_byte_limit() -> None:
    text = ("Ünïcødé paragraph. " * 30 + "\n\n") * 5
    parts = split_text(text, limit=1200)
    assert len(parts) > 1
    assert all(len(part.encode()) <= 1200 for part in parts)
    assert all(part.endswith("paragraph.") for part in parts)
    assert split_text("short") == ["short"]
    assert all(len(p.encode()) <= 100 for p in split_text("x" * 1000, limit=100))


def test_an_outbound_card_has_title_text_facts_sources_and_buttons() -> None:
    source = Source(1, "Discount policy", "Approvals", "sales", 3, 4)
    card = outbound_card(Outbound(
        text="Body", title="Title", fields=(("Value", "7"),), sources=(source,),
        actions=(Action("Acknowledge", "alert.ack", "17", style="danger"),),
    ))  # fmt: skip
    assert card["version"] == "1.4"
    texts = [block.get("text") for block in card["body"]]
    assert texts[:2] == ["Title", "Body"]
    assert "[1] Discount policy › Approvals · sales" in texts
    [button] = card["actions"]
    assert (button["verb"], button["style"]) == ("alert.ack", "destructive")


def test_answer_cards_carry_feedback_only_for_answers() -> None:
    answered = Reply("Yes [1].", ReplyStatus.ANSWERED, message_id=41)
    card = answer_card(answered)
    assert card is not None
    assert [a["data"]["value"] for a in card["actions"]] == ["41:up", "41:down"]
    assert answer_card(Reply("Got it", ReplyStatus.COMMAND, message_id=42)) is None
    assert answer_card(Reply("Sorry", ReplyStatus.ERROR, message_id=43)) is None


def test_the_stream_takes_one_message_worth_and_leaves_the_rest() -> None:
    budget = StreamBudget(limit=20)
    assert budget.take("Hello ") == "Hello "
    assert budget.take("world, ") == "world, "
    assert budget.take("and a lot more text") == ""
    assert budget.take("!") == ""
    assert budget.rest_of("Hello world, and a lot more text!") == "and a lot more text!"
    first = StreamBudget(limit=10)
    assert first.take("one two three four") == "one two"


# --- the Bot Connector, politely ---------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_the_pacer_allows_seven_per_second_per_conversation() -> None:
    clock = FakeClock()
    pacer = ConversationPacer(sleep=clock.sleep, clock=clock)
    for _ in range(7):
        await pacer.wait(f"{CHANNEL_ID};messageid=1")
    await pacer.wait("a:other")  # another conversation is not held up
    assert clock.slept == []
    await pacer.wait(f"{CHANNEL_ID};messageid=2")  # a thread shares its channel's limit
    assert clock.slept == [pytest.approx(1.0)]


def test_retry_after_is_honoured() -> None:
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert retry_after_seconds("soon") is None
    assert retry_delay(0, "3") == 3.0
    assert 0 <= retry_delay(3) <= 4.0


def _refusal(status: int, retry_after: str | None = None) -> aiohttp.ClientResponseError:
    headers = {"Retry-After": retry_after} if retry_after else {}
    return aiohttp.ClientResponseError(None, (), status=status, headers=headers)  # type: ignore[arg-type]


async def test_with_retries_retries_throttling_only() -> None:
    clock = FakeClock()
    answers: list[Any] = [_refusal(429, "1"), _refusal(502), "ok"]

    async def call() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert await with_retries(call, sleep=clock.sleep) == "ok"
    assert clock.slept[0] == 1.0 and len(clock.slept) == 2

    answers[:] = [_refusal(400), "never"]
    with pytest.raises(aiohttp.ClientResponseError):
        await with_retries(call, sleep=clock.sleep)
    assert answers == ["never"]


def test_connector_errors_become_delivery_errors() -> None:
    assert delivery_error(_refusal(429, "5")).retryable is True
    assert delivery_error(_refusal(429, "5")).retry_after == 5.0
    assert delivery_error(_refusal(404)).retryable is False
    assert delivery_error(aiohttp.ServerDisconnectedError()).retryable is True
    refused = delivery_error(ValueError("Failed to acquire token: invalid_client secret=x"))
    assert refused.retryable is False and "secret=x" not in str(refused)
