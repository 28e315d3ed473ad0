"""Slack payload parsing and rendering: pure functions."""

from __future__ import annotations

import pytest

from bot.messages import Reply, ReplyStatus, Source
from bot.outbound import Action, Outbound
from handlers.slack.events import message_from_event
from handlers.slack.rendering import (
    answer_messages,
    outbound_blocks,
    parse_action_id,
    split_text,
    to_mrkdwn,
)

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


EM = "\u2003\u2003"  # one level of list indentation
ANSWER = (
    "***Read this first:*** primary carers get 16 weeks [1].\n\n"
    "| Plan | Days |\n|:--|--:|\n| Basic | 25 |\n| **Plus** | 30 |\n\n"
    "- Parental leave\n  - primary carer\n    - adoption too\n  - partner\n- Sabbatical\n\n"
    "See [the policy](https://en.wikipedia.org/wiki/Parental_leave_(Germany)). <!channel>"
)


def test_bold_italic_comes_out_bold_and_italic_in_mrkdwn() -> None:
    assert to_mrkdwn("***all of it*** and **bold _nested_** and *it **b***") == (
        "*_all of it_* and *bold _nested_* and _it *b*_"
    )


def test_a_table_becomes_aligned_columns_in_mrkdwn() -> None:
    table = "| Plan | Days |\n|:--|--:|\n| Basic | 25 |\n| **Plus** | 30 |"
    assert to_mrkdwn(f"Allowances:\n\n{table}\n\nThat is all.") == (
        "Allowances:\n\n```\nPlan  | Days\n------+-----\nBasic |   25\nPlus  |   30\n```"
        "\n\nThat is all."
    )


def test_a_table_inside_code_stays_code() -> None:
    code = "```\n| a | b |\n|---|---|\n```"
    assert to_mrkdwn(code) == code


def test_nested_lists_keep_their_levels_in_mrkdwn() -> None:
    markdown = "- a\n  - b\n    - c\n  - d\n- e\n\n1. one\n   - sub\n2. two"
    assert to_mrkdwn(markdown) == (
        f"• a\n{EM}◦ b\n{EM}{EM}▪ c\n{EM}◦ d\n• e\n\n1. one\n{EM}◦ sub\n2. two"
    )


def test_a_link_with_parentheses_and_slack_tokens_in_mrkdwn() -> None:
    markdown = "[Leave](https://en.wikipedia.org/wiki/Leave_(employment)) <!channel> <@U1>"
    assert to_mrkdwn(markdown) == (
        "<https://en.wikipedia.org/wiki/Leave_(employment)|Leave> &lt;!channel&gt; &lt;@U1&gt;"
    )


def test_an_answer_goes_to_slack_as_a_markdown_block_with_a_readable_fallback() -> None:
    source = Source(1, "Leave Policy", "Parental leave", "hr", document_id=1, chunk_id=1)
    reply = Reply(ANSWER, ReplyStatus.ANSWERED, sources=(source,), message_id=7)
    feedback = (Action("👍", "feedback", "7:up"), Action("👎", "feedback", "7:down"))
    [message] = answer_messages(reply, feedback)
    body, sources, buttons = message["blocks"]
    # Slack renders standard Markdown itself; only its own <…> tokens are defused.
    assert body == {"type": "markdown", "text": ANSWER.replace("<!channel>", "&lt;!channel>")}
    assert (sources["type"], buttons["type"]) == ("context", "actions")
    assert "Leave Policy › Parental leave (hr)" in sources["elements"][0]["text"]
    fallback = message["text"]  # notifications show it: mrkdwn, no Markdown markers
    assert fallback.startswith("*_Read this first:_* primary carers get 16 weeks [1].")
    assert "```\nPlan  | Days\n" in fallback and "**" not in fallback
    assert f"• Parental leave\n{EM}◦ primary carer\n{EM}{EM}▪ adoption too\n" in fallback
    assert "<https://en.wikipedia.org/wiki/Parental_leave_(Germany)|the policy>" in fallback
    assert fallback.endswith("&lt;!channel&gt;")


def test_a_long_answer_is_split_into_markdown_blocks_and_the_last_gets_the_trailer() -> None:
    paragraph = "**Approvals** depend on the deal size. " * 20
    text = "\n\n".join([paragraph] * 12)
    reply = Reply(text, ReplyStatus.ANSWERED, message_id=3)
    messages = answer_messages(reply, (Action("👍", "feedback", "3:up"),))
    assert len(messages) > 1
    assert [[b["type"] for b in m["blocks"]] for m in messages] == [
        ["markdown"] for _ in messages[:-1]
    ] + [["markdown", "actions"]]
    assert all(len(m["text"]) <= 3900 for m in messages)
    rebuilt = " ".join(m["blocks"][0]["text"] for m in messages)
    assert rebuilt.split() == text.split()


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
    assert kinds == ["header", "markdown", "section", "actions"]
    button = payload["blocks"][-1]["elements"][0]
    assert parse_action_id(button["action_id"]) == "alert.ack"
    assert button["value"] == "42" and button["style"] == "primary"
    assert payload["blocks"][1]["text"] == "LLM errors above **5%**"
    assert payload["text"] == "🔴 LLM error rate\nLLM errors above *5%*"
