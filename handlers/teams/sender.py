"""Posting into Teams on deskmate's own initiative (scheduled messages, digests, alerts).

A post goes to a conversation deskmate has a stored reference for. A channel without a thread
gets a new post (`create_conversation` with the channel id), which starts a thread that
follow-ups (`Target.thread`) reply into. Sends run in SDK turns, so ConnectorPolicy paces and
retries them; what still fails becomes a DeliveryError.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from microsoft_agents.activity import (
    Activity,
    ActivityTypes,
    ConversationParameters,
    ConversationReference,
    TextFormatTypes,
)
from microsoft_agents.hosting.core import TurnContext

from bot.outbound import Delivery, DeliveryError, Outbound, Target
from handlers.teams.activities import CHANNEL, TEAMS, thread_conversation_id
from handlers.teams.cards import attachment, outbound_card, split_text
from handlers.teams.connector import CONNECTOR_ERRORS, delivery_error, with_retries
from handlers.teams.references import ConversationBook
from handlers.teams.sdk import TeamsSdk
from storage.teams import TeamsConversation


def outbound_activities(message: Outbound) -> list[Activity]:
    """The card, then (for text too long for one message) the rest as plain messages."""
    parts = split_text(message.text)
    first = Activity(type=ActivityTypes.message,
                     attachments=[attachment(outbound_card(message, parts[0]))])  # fmt: skip
    rest = [
        Activity(type=ActivityTypes.message, text=part, text_format=TextFormatTypes.markdown)
        for part in parts[1:]
    ]
    return [first, *rest]


class TeamsSender:
    """`bot.outbound.Sender` for Microsoft Teams."""

    platform = TEAMS

    def __init__(self, sdk: TeamsSdk, book: ConversationBook) -> None:
        self.sdk = sdk
        self.book = book

    async def post(self, target: Target, message: Outbound) -> Delivery:
        """Post into the conversation (into `target.thread` when set); DeliveryError when it
        fails. With an idempotency key already delivered, the earlier post comes back."""
        key = message.idempotency_key
        if key and (earlier := await self.book.delivery(target.tenant, key)) is not None:
            return earlier
        conversation = await self._conversation(target)
        activities = outbound_activities(message)
        try:
            if target.thread or conversation.conversation_type != CHANNEL:
                delivery = await self._send(conversation, target.thread, activities)
            else:
                delivery = await self._start_thread(conversation, activities)
        except CONNECTOR_ERRORS as exc:
            raise delivery_error(exc) from exc
        if key:
            await self.book.record(target.tenant, key, conversation.conversation_id, delivery)
        return delivery

    async def update(self, target: Target, message_id: str, message: Outbound) -> None:
        """Replace a posted card's content (e.g. an acknowledged alert) for everyone."""
        conversation = await self._conversation(target)
        card = outbound_activities(message)[0]
        card.id = message_id
        thread = target.thread
        if thread is None and conversation.conversation_type == CHANNEL:
            thread = message_id  # deskmate's channel posts start threads: the root is the post
        try:
            await self._in_turn(conversation, thread, lambda ctx: ctx.update_activity(card))
        except CONNECTOR_ERRORS as exc:
            raise delivery_error(exc) from exc

    async def find(
        self, target: Target, idempotency_key: str, *, since: dt.datetime | None = None
    ) -> Delivery | None:
        """The post an earlier attempt with this key made, if any: the book keeps each
        delivery by key, so no time bound is needed. (A crash between Teams' answer and the
        book's record is the one window a retry cannot see: bots cannot read a channel.)"""
        return await self.book.delivery(target.tenant, idempotency_key)

    async def _conversation(self, target: Target) -> TeamsConversation:
        conversation = await self.book.lookup(target.tenant, target.channel)
        if conversation is None:
            raise DeliveryError(
                "deskmate has not talked in Teams yet: install the app and message it once",
                retryable=False,
            )
        return conversation

    async def _send(
        self, conversation: TeamsConversation, thread: str | None, activities: list[Activity]
    ) -> Delivery:
        async def send_all(context: TurnContext) -> str:
            ids = [(await context.send_activity(activity)).id for activity in activities]
            return ids[0] or ""

        message_id = await self._in_turn(conversation, thread, send_all)
        return Delivery(message_id=message_id, thread=thread)

    async def _start_thread(
        self, conversation: TeamsConversation, activities: list[Activity]
    ) -> Delivery:
        """A new channel post; its id is the thread follow-ups go into."""
        reference = ConversationReference.model_validate(conversation.reference)
        channel_data: dict[str, Any] = {"channel": {"id": conversation.conversation_id}}
        parameters = ConversationParameters(
            is_group=True, agent=reference.agent, activity=activities[0], channel_data=channel_data
        )
        if conversation.aad_tenant_id:
            channel_data["tenant"] = {"id": conversation.aad_tenant_id}
            parameters.tenant_id = conversation.aad_tenant_id

        async def created_id(context: TurnContext) -> str:
            return context.activity.id or ""

        root = await with_retries(
            lambda: self.sdk.in_new_conversation(conversation.service_url, parameters, created_id)
        )
        if activities[1:]:
            await self._send(conversation, root, activities[1:])
        return Delivery(message_id=root, thread=root)

    async def _in_turn[T](
        self,
        conversation: TeamsConversation,
        thread: str | None,
        work: Callable[[TurnContext], Awaitable[T]],
    ) -> T:
        """Run `work` in a proactive turn of the conversation (or one of its channel threads)."""
        reference = ConversationReference.model_validate(conversation.reference)
        address = thread_conversation_id(conversation.conversation_id, thread)
        reference.conversation = reference.conversation.model_copy(update={"id": address})
        continuation = reference.get_continuation_activity()
        # Proactive posts answer no activity: without an id, sends go to the conversation
        # (POST …/activities) rather than as a reply to a made-up activity id.
        continuation.id = None
        return await self.sdk.in_turn(self.sdk.bot_identity(), continuation, work)
