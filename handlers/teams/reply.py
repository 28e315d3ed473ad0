"""Showing an answer in Teams: streamed in personal chats, posted whole in groups and threads.

These run inside an SDK turn of the conversation the question came from (see TeamsInteractions), so
`context.send_activity` replies to the person's message, in its channel thread if it has one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from microsoft_agents.activity import Activity, ActivityTypes, TextFormatTypes
from microsoft_agents.hosting.core import TurnContext

from bot.conversation import DeltaCallback
from bot.messages import IncomingMessage, Reply
from handlers.teams.cards import MAX_TEXT_BYTES, answer_card, attachment, split_text

Handle = Callable[[IncomingMessage, DeltaCallback | None], Awaitable[Reply]]

# Shown as Teams' progress line until the first words of the answer arrive.
THINKING = "Looking through your documents…"


class StreamBudget:
    """How much of an answer goes into the stream: one message's worth. The rest of a very
    long answer follows as separate messages, because a stream is a single message."""

    def __init__(self, limit: int = MAX_TEXT_BYTES) -> None:
        self.limit = limit
        self.text = ""
        self.full = False

    def take(self, delta: str) -> str:
        """The part of `delta` to stream ("" once the message is full)."""
        if self.full:
            return ""
        if len((self.text + delta).encode()) <= self.limit:
            self.text += delta
            return delta
        self.full = True
        if self.text:
            return ""
        head = split_text(delta, self.limit)[0]  # a single delta larger than a message
        self.text = head
        return head

    def rest_of(self, full_text: str) -> str:
        """What the stream did not show of the final text."""
        shown = self.text.strip()
        text = full_text.strip()
        return text[len(shown) :].strip() if text.startswith(shown) else ""


def text_activities(text: str, reply: Reply | None = None) -> list[Activity]:
    """`text` as one or more Markdown messages; the answer's card (sources, 👍/👎) on the last."""
    activities = [
        Activity(type=ActivityTypes.message, text=part, text_format=TextFormatTypes.markdown)
        for part in split_text(text)
    ]
    content = answer_card(reply) if reply is not None else None
    if content is not None:
        activities[-1].attachments = [attachment(content)]
    return activities


async def send_reply(context: TurnContext, reply: Reply, text: str | None = None) -> None:
    """Post the reply (or `text` instead of its own) with its card, in order."""
    for activity in text_activities(reply.text if text is None else text, reply):
        await context.send_activity(activity)


async def stream_answer(context: TurnContext, incoming: IncomingMessage, handle: Handle) -> Reply:
    """Personal chat: a progress line at once, the answer as Claude writes it (Teams shows it
    growing), then the final message with the sources and 👍/👎."""
    stream = context.streaming_response
    stream.queue_informative_update(THINKING)
    budget = StreamBudget()

    async def on_delta(delta: str) -> None:
        if part := budget.take(delta):
            stream.queue_text_chunk(part)

    reply = await handle(incoming, on_delta)
    if not budget.text:  # nothing was streamed (e.g. an empty answer): the stream needs text
        stream.queue_text_chunk(budget.take(reply.text) or "…")
    rest = budget.rest_of(reply.text)
    content = answer_card(reply)
    if content is not None and not rest:
        stream.set_attachments([attachment(content)])
    await stream.end_stream()
    if rest:
        for activity in text_activities(rest, reply):
            await context.send_activity(activity)
    return reply
