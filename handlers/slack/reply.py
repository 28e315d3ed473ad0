"""Answering a Slack message: status, streamed answer, split follow-ups, sources, feedback.

In DMs (and assistant threads) the answer streams with chat.startStream/appendStream/stopStream;
in channels a placeholder is posted and edited at most once a second, then replaced by the final
answer, split into as many messages as Slack's limits need.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.feedback import FEEDBACK, button_value
from bot.messages import IncomingMessage, Reply
from bot.outbound import Action
from handlers.slack.events import SlackMessage
from handlers.slack.rendering import (
    MESSAGE_LIMIT,
    answer_messages,
    answer_trailer,
    fallback_text,
    markdown_messages,
    slack_markdown,
)

logger = logging.getLogger("deskmate.slack")

Answer = Callable[[IncomingMessage, Callable[[str], Awaitable[None]]], Awaitable[Reply]]
UPDATE_INTERVAL = 1.0  # seconds between chat.update calls while an answer streams in
THINKING = "_Thinking…_"


def feedback_actions(reply: Reply) -> tuple[Action, ...]:
    if reply.message_id is None or reply.ephemeral:
        return ()
    return (Action("👍", FEEDBACK, button_value(reply.message_id, "up")),
            Action("👎", FEEDBACK, button_value(reply.message_id, "down")))  # fmt: skip


async def set_status(client: AsyncWebClient, message: SlackMessage, status: str) -> None:
    """The "is thinking…" line of assistant threads; other DMs don't have it, which is fine."""
    try:
        await client.assistant_threads_setStatus(
            channel_id=message.channel, thread_ts=message.reply_thread, status=status
        )
    except (SlackApiError, SlackClientError) as exc:
        logger.debug("no assistant status in %s: %s", message.channel, exc)


async def stream_answer(
    client: AsyncWebClient, message: SlackMessage, incoming: IncomingMessage, answer: Answer
) -> Reply:
    """DMs: stream into the thread; text past one message's worth follows as messages."""
    streamer = await client.chat_stream(
        channel=message.channel, thread_ts=message.reply_thread,
        recipient_team_id=message.team_id, recipient_user_id=message.user,
    )  # fmt: skip
    carried, overflow = 0, False

    async def on_delta(piece: str) -> None:
        nonlocal carried, overflow
        if overflow:
            return
        if carried + len(piece) > MESSAGE_LIMIT:
            overflow = True
            # The stream ends at a space or line break, not inside the word a delta ended in.
            head = piece[: MESSAGE_LIMIT - carried]
            piece = piece[: max(head.rfind(" "), head.rfind("\n"), 0)]
        if piece:
            await streamer.append(markdown_text=slack_markdown(piece))
            carried += len(piece)

    reply = await answer(incoming, on_delta)
    trailer = answer_trailer(reply, feedback_actions(reply))
    if not overflow:
        await streamer.stop(blocks=trailer)
        return reply
    await streamer.stop()
    # The stream holds the answer's beginning; the rest follows, split at Slack's limits.
    for payload in markdown_messages(reply.text[carried:].strip(), trailer):
        await client.chat_postMessage(channel=message.channel, thread_ts=message.reply_thread,
                                      **payload)  # fmt: skip
    return reply


async def edit_answer(
    client: AsyncWebClient, message: SlackMessage, incoming: IncomingMessage, answer: Answer
) -> Reply:
    """Channels: a placeholder edited at most once a second, then the final split answer."""
    placeholder = await client.chat_postMessage(
        channel=message.channel, thread_ts=message.reply_thread, text=THINKING
    )
    ts = str(placeholder["ts"])
    text, last = "", 0.0

    async def on_delta(piece: str) -> None:
        nonlocal text, last
        text += piece
        if time.monotonic() - last >= UPDATE_INTERVAL:
            last = time.monotonic()
            # Text alone while it streams in: the final edit brings the blocks.
            await client.chat_update(channel=message.channel, ts=ts, text=fallback_text(text))

    reply = await answer(incoming, on_delta)
    payloads = answer_messages(reply, feedback_actions(reply))
    await client.chat_update(channel=message.channel, ts=ts, **payloads[0])
    for payload in payloads[1:]:
        await client.chat_postMessage(channel=message.channel, thread_ts=message.reply_thread,
                                      **payload)  # fmt: skip
    return reply
