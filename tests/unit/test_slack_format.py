"""Slack payload parsing and rendering: pure functions."""

from __future__ import annotations

import pytest

from bot.outbound import Action, Outbound
from handlers.slack.events import message_from_event
from handlers.slack.rendering import outbound_blocks, parse_action_id, split_text, to_mrkdwn

BOT = "UBOT"


def parse(event: dict) -> object:
    return message_from_event(event, bot_user_id=BOT, team_id="T1")


def test_markdown_becomes_mrkdwn() -> None:
    markdown = ("## Leave\nYou get **16 weeks** of *paid* leave [1]. "
                "See [the policy](https://intra.example/leave).\n- first\n* second\n"
                "`keep **this**`\n> quoted <b>")  # fmt: skip
    assert to_mrkdwn(markdown) == (
        "*Leave*\nYou get *16 weeks* of _paid_ leave [1]. "
        "See <https://intra.example/leave|the policy>.\n• first\n• second\n"
        "`keep **this**`\n> quoted &lt;b&gt;"
    )


def test_split_text_cuts_at_boundaries_and_loses_nothing() -> None:
    text = "\n\n".join(f"Paragraph {i} " + "word " * 120 for i in range(30))
    pieces = split_text(text, 3000)
    assert all(len(p) <= 3000 for p in pieces)
    assert " ".join(pieces).split() == text.split()
    assert all(p.startswith("Paragraph") for p in pieces)


def test_mention_is_answered_without_the_mention() -> None:
    event = {"type": "app_mention", "channel": "C1", "user": "U1", "ts": "1.1",
             "text": f"<@{BOT}>  what is   the VPN?"}  # fmt: skip
    message = parse(event)
    assert message.text == "what is the VPN?" and message.reply_thread == "1.1"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "event",
    [
        {
            "type": "message",
            "channel_type": "channel",
            "channel": "C1",
            "user": "U1",
            "ts": "1.1",
            "text": f"<@{BOT}> twin of the mention",
        },
        {
            "type": "message",
            "channel_type": "channel",
            "channel": "C1",
            "user": "U1",
            "ts": "1.1",
            "text": "chatter without a mention",
        },
        {
            "type": "message",
            "channel_type": "im",
            "channel": "D1",
            "user": "U1",
            "ts": "1.1",
            "text": "x",
            "subtype": "message_changed",
        },
        {
            "type": "message",
            "channel_type": "im",
            "channel": "D1",
            "ts": "1.1",
            "text": "x",
            "bot_id": "B9",
        },
        {
            "type": "message",
            "channel_type": "im",
            "channel": "D1",
            "user": BOT,
            "ts": "1.1",
            "text": "my own",
        },
    ],
    ids=["mention-twin", "chatter", "edit", "other-bot", "own"],
)
def test_ignored_events(event: dict) -> None:
    assert parse(event) is None


def test_thread_reply_without_mention_needs_the_thread_check() -> None:
    event = {"type": "message", "channel_type": "channel", "channel": "C1", "user": "U1",
             "ts": "1.2", "thread_ts": "1.1", "text": "and then?"}  # fmt: skip
    message = parse(event)
    assert message.needs_thread_check and message.session_thread == "1.1"  # type: ignore[attr-defined]


def test_dm_top_level_is_one_conversation_but_replies_in_a_thread() -> None:
    message = parse({"type": "message", "channel_type": "im", "channel": "D1", "user": "U1",
                     "ts": "1.1", "text": "hi"})  # fmt: skip
    assert message.session_thread is None and message.reply_thread == "1.1"  # type: ignore[attr-defined]


def test_outbound_renders_title_fields_and_buttons() -> None:
    alert = Outbound(
        text="LLM errors above **5%**",
        title="🔴 LLM error rate",
        fields=(("Value", "12%"), ("Threshold", "5%")),
        actions=(Action("Acknowledge", "alert.ack", "42", style="primary"),),
    )
    payload = outbound_blocks(alert)
    kinds = [b["type"] for b in payload["blocks"]]
    assert kinds == ["header", "section", "section", "actions"]
    button = payload["blocks"][-1]["elements"][0]
    assert parse_action_id(button["action_id"]) == "alert.ack"
    assert button["value"] == "42" and button["style"] == "primary"
    assert payload["blocks"][1]["text"]["text"] == "LLM errors above *5%*"
