"""The slow part of each Teams interaction, run by the runtime's spawner after `/api/messages`
has answered (Teams wants its HTTP answer within seconds; Claude may take longer)."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from functools import partial
from typing import Any

import aiohttp
from microsoft_agents.activity import Activity, ChannelAccount, ConversationParameters
from microsoft_agents.hosting.core import ClaimsIdentity, TurnContext
from microsoft_agents.hosting.core.app.typing_indicator import TypingIndicator, TypingOptions
from microsoft_agents.hosting.core.connector import ConnectorClientBase

from bot.actions import Click, ClickResult
from bot.errors import DeskmateError, report_error
from bot.messages import IncomingMessage, Profile, Reply
from bot.outbound import Outbound, Target
from bot.runtime import Runtime
from handlers.teams.activities import (
    GROUP_CHAT,
    PERSONAL,
    TEAMS,
    TeamsMessage,
    aad_tenant_id,
    split_conversation_id,
)
from handlers.teams.connector import CONNECTOR_ERRORS
from handlers.teams.reply import send_reply, stream_answer, text_activities
from handlers.teams.sdk import TeamsSdk
from handlers.teams.sender import TeamsSender

logger = logging.getLogger("deskmate.teams")

SENT_PRIVATELY = "I've sent you that in our personal chat."
PRIVATE_ONLY = "That is only for you to see: ask me in a personal chat with deskmate."
# Teams hides a typing indicator after about three seconds; renew it at that pace.
GROUP_TYPING = TypingOptions(initial_delay_ms=0, interval_ms=3000)


async def _member_profile(
    context: TurnContext, conversation_id: str, known_name: str | None
) -> Profile:
    """The sender's email (or UPN) and name from the Bot Connector's member lookup (nothing
    when the turn has no connector: an expectReplies turn talks only through its response)."""
    connector: Any = context.services.get(ConnectorClientBase)
    sender = context.activity.from_property
    if connector is None or sender is None or not hasattr(connector, "get_conversation_member"):
        return Profile()
    try:
        member = await connector.get_conversation_member(conversation_id, sender.id)
    except (aiohttp.ClientError, ValueError) as exc:
        logger.warning("Teams member lookup failed: %s", type(exc).__name__)
        return Profile()
    address = member.email or member.user_principal_name
    return Profile(
        email=address.lower() if address and "@" in address else None,
        display_name=member.name or known_name,
    )


class TeamsInteractions:
    """Answers and button clicks, each in an SDK turn of its own conversation."""

    def __init__(self, runtime: Runtime, sdk: TeamsSdk, sender: TeamsSender) -> None:
        self.runtime = runtime
        self.sdk = sdk
        self.sender = sender

    async def answer(
        self, message: TeamsMessage, activity: Activity, identity: ClaimsIdentity
    ) -> None:
        """Answer one message where it was asked; the event is marked done, or failed so a
        redelivery of the same message may try again."""
        ok = False
        try:
            await self.sdk.in_turn(identity, activity, lambda ctx: self._answer(ctx, message))
            ok = True
        finally:
            await self.runtime.events.finish(TEAMS, message.event_key, ok=ok)

    async def _answer(self, context: TurnContext, message: TeamsMessage) -> None:
        incoming = self._with_profile(context, message.incoming)
        handle = self.runtime.conversation.handle
        if message.kind == PERSONAL:
            await stream_answer(context, incoming, handle)
            return
        # Teams shows typing in group chats; channel threads have no typing indicator.
        typing: Any = (
            TypingIndicator(context, typing_options=GROUP_TYPING)
            if message.kind == GROUP_CHAT
            else contextlib.nullcontext()
        )
        async with typing:
            reply = await handle(incoming, None)
        if reply.ephemeral:
            await self._answer_privately(context, reply)
        else:
            await send_reply(context, reply)

    def _with_profile(self, context: TurnContext, incoming: IncomingMessage) -> IncomingMessage:
        """Let the core ask Teams for the sender's email (UPN) and name when it does not know
        them yet: that is how `users add` entries without a Teams id find their person."""
        lookup = partial(_member_profile, context, incoming.conversation_id, incoming.display_name)
        return dataclasses.replace(incoming, lookup_profile=lookup)

    async def answer_in_turn(self, context: TurnContext, message: TeamsMessage) -> None:
        """Answer inside the request's own turn (`deliveryMode: expectReplies`): the reply is
        returned in the HTTP response, whole, since nothing can be streamed or posted later."""
        ok = False
        try:
            incoming = self._with_profile(context, message.incoming)
            reply = await self.runtime.conversation.handle(incoming, None)
            if reply.ephemeral and message.kind != PERSONAL:
                # No personal chat can be opened from here: the group hears only this.
                for note in text_activities(PRIVATE_ONLY):
                    await context.send_activity(note)
            else:
                await send_reply(context, reply)
            ok = True
        finally:
            await self.runtime.events.finish(TEAMS, message.event_key, ok=ok)

    async def identify(self, context: TurnContext, click: Click) -> Click:
        """The clicker with the email and name Teams knows, so a person whose first contact
        with deskmate is a click is linked to their directory entry like a first message."""
        if click.email is not None or click.trusted_email is not None:
            return click
        conversation = context.activity.conversation
        if conversation is None:
            return click
        base, _ = split_conversation_id(conversation.id)
        profile = await _member_profile(context, base, click.display_name)
        return dataclasses.replace(
            click, email=profile.email, display_name=profile.display_name or click.display_name
        )

    async def _answer_privately(self, context: TurnContext, reply: Reply) -> None:
        """Commands show personal things (memories): outside a personal chat they go to the
        person's 1:1 chat with deskmate, and the thread only hears where they went."""
        activity = context.activity
        sender = activity.from_property
        parameters = ConversationParameters(
            is_group=False, agent=activity.recipient, members=[ChannelAccount(id=sender.id)]
        )
        if tenant := aad_tenant_id(activity):
            parameters.tenant_id = tenant
        try:
            await self.sdk.in_new_conversation(
                activity.service_url, parameters, lambda personal: send_reply(personal, reply)
            )
        except CONNECTOR_ERRORS as exc:  # the reply must still not land in the thread
            logger.warning("could not open a personal chat: %s", type(exc).__name__)
            note = PRIVATE_ONLY
        else:
            note = SENT_PRIVATELY
        for message in text_activities(note):
            await context.send_activity(message)

    async def click(self, click: Click) -> ClickResult:
        """Run the button's business rule; a failure becomes the sentence the clicker sees."""
        try:
            return await self.runtime.actions.dispatch(click)
        except DeskmateError as exc:
            return ClickResult(str(exc))
        except Exception as exc:
            reference = report_error(exc, where=f"teams.click:{click.kind}")
            return ClickResult(f"Sorry — that didn't work. (reference {reference})")

    async def after_click(self, result: ClickResult, activity: Activity, *, say: bool) -> None:
        """The clicked card's new content for everyone and, when the click had no reply of its
        own (Action.Submit), the result text in the same conversation or thread."""
        if activity.conversation is None:
            return
        base, thread = split_conversation_id(activity.conversation.id)
        target = Target(TEAMS, base, thread=thread)
        if result.replace_with is not None and activity.reply_to_id:
            await self.sender.update(target, activity.reply_to_id, result.replace_with)
        if say and result.text:
            await self.sender.post(target, Outbound(text=result.text))

    async def submit(self, click: Click, activity: Activity, identity: ClaimsIdentity) -> None:
        """An `Action.Submit` click (clients without Action.Execute), handled after the ack;
        the clicker is looked up in a turn of the card's conversation."""
        known = await self.sdk.in_turn(identity, activity, lambda ctx: self.identify(ctx, click))
        await self.after_click(await self.click(known), activity, say=True)
