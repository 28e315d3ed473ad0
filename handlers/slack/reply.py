"""Answering a Slack message: status, streamed answer, split follow-ups, sources, feedback.

In DMs (and assistant threads) the answer streams with chat.startStream/appendStream/stopStream;
in channels a placeholder is posted and edited at most once a second, then replaced by the final
answer, split into as many messages as Slack's limits need.

Every message of an answer carries the event it answers in its metadata (`deskmate_answer`):
`final` on the message that completes the answer, `partial` on the others. A resumed attempt
(its replica died mid-answer) reads the thread first: an answer already complete is not given
again, and what a broken-off attempt left on screen is removed before answering anew.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

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
ANSWER_EVENT = "deskmate_answer"
REPLIES_PAGE = 200  # Slack's advice for conversations.replies pages


def answer_metadata(message: SlackMessage, *, final: bool) -> dict[str, Any]:
    """The mark a resumed attempt looks for: which event this message answers, and whether the
    answer is complete once it is on screen."""
    state = "final" if final else "partial"
    return {"event_type": ANSWER_EVENT,
            "event_payload": {"event": message.event_key, "state": state}}  # fmt: skip


def _marked(payloads: list[dict[str, Any]], message: SlackMessage) -> list[dict[str, Any]]:
    """Messages of one answer in order: the last one completes it."""
    last = len(payloads) - 1
    return [p | {"metadata": answer_metadata(message, final=n == last)}
            for n, p in enumerate(payloads)]  # fmt: skip


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
    # Past one message's worth, the stream holds the answer's beginning; the rest follows,
    # split at Slack's limits.
    rest = markdown_messages(reply.text[carried:].strip(), trailer) if overflow else []
    if not rest:
        await streamer.stop(blocks=trailer, metadata=answer_metadata(message, final=True))
        return reply
    await streamer.stop(metadata=answer_metadata(message, final=False))
    for payload in _marked(rest, message):
        await client.chat_postMessage(channel=message.channel, thread_ts=message.reply_thread,
                                      **payload)  # fmt: skip
    return reply


async def edit_answer(
    client: AsyncWebClient, message: SlackMessage, incoming: IncomingMessage, answer: Answer
) -> Reply:
    """Channels: a placeholder edited at most once a second, then the final split answer."""
    unfinished = answer_metadata(message, final=False)
    placeholder = await client.chat_postMessage(
        channel=message.channel, thread_ts=message.reply_thread, text=THINKING,
        metadata=unfinished,
    )  # fmt: skip
    ts = str(placeholder["ts"])
    text, last = "", 0.0

    async def on_delta(piece: str) -> None:
        nonlocal text, last
        text += piece
        if time.monotonic() - last >= UPDATE_INTERVAL:
            last = time.monotonic()
            # Text alone while it streams in: the final edit brings the blocks.
            await client.chat_update(channel=message.channel, ts=ts, text=fallback_text(text),
                                     metadata=unfinished)  # fmt: skip

    reply = await answer(incoming, on_delta)
    payloads = _marked(answer_messages(reply, feedback_actions(reply)), message)
    await client.chat_update(channel=message.channel, ts=ts, **payloads[0])
    for payload in payloads[1:]:
        await client.chat_postMessage(channel=message.channel, thread_ts=message.reply_thread,
                                      **payload)  # fmt: skip
    return reply


@dataclass(frozen=True)
class EarlierAnswer:
    """What earlier attempts at answering a message left in its thread."""

    complete: bool  # the whole answer is on screen
    stubs: tuple[str, ...] = ()  # ts of messages an attempt began and never completed


async def earlier_answer(client: AsyncWebClient, message: SlackMessage) -> EarlierAnswer:
    """Read the reply thread after the person's message, page by page, for this event's answer.

    A stream carries no metadata until it stops (chat.startStream takes none), so in a DM a
    deskmate message without any is a broken-off stream: counted only until the person's next
    message in the thread, after which it may be the answer to that one."""
    stubs: list[str] = []
    open_window = message.is_direct
    async for item in _replies_after(client, message):
        metadata = item.get("metadata") or {}
        mark = metadata.get("event_payload") or {}
        if metadata.get("event_type") == ANSWER_EVENT and mark.get("event") == message.event_key:
            if mark.get("state") == "final":
                return EarlierAnswer(complete=True)
            stubs.append(str(item["ts"]))
        elif item.get("user") == message.user and not item.get("bot_id"):
            open_window = False
        elif open_window and item.get("bot_id") and not metadata:
            stubs.append(str(item["ts"]))
    return EarlierAnswer(complete=False, stubs=tuple(stubs))


async def remove_stubs(
    client: AsyncWebClient, message: SlackMessage, stubs: tuple[str, ...]
) -> None:
    """Take a broken-off attempt off the screen, so the new answer is the only one."""
    for ts in stubs:
        try:
            await client.chat_delete(channel=message.channel, ts=ts)
        except SlackApiError as exc:
            if exc.response.get("error") != "message_not_found":
                raise


async def _replies_after(
    client: AsyncWebClient, message: SlackMessage
) -> AsyncIterator[dict[str, Any]]:
    """The reply thread's messages newer than the person's, oldest first, to the last page."""
    query: dict[str, Any] = {"channel": message.channel, "ts": message.reply_thread,
                             "oldest": message.ts, "limit": REPLIES_PAGE,
                             "include_all_metadata": True}  # fmt: skip
    while True:
        response = await client.conversations_replies(**query)
        for item in response.get("messages") or []:
            if float(item.get("ts") or 0) > float(message.ts):  # Slack adds the thread's parent
                yield item
        cursor = (response.get("response_metadata") or {}).get("next_cursor")
        if not response.get("has_more") or not cursor:
            return
        query["cursor"] = cursor
