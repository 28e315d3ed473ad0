"""The slow part of each Slack interaction, run by the runtime's spawner after the ack."""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import partial
from typing import Any

from slack_bolt.async_app import AsyncRespond
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.actions import Click
from bot.errors import DeskmateError, report_error
from bot.identity import DEFAULT_TENANT
from bot.installations import workspace_tenant
from bot.messages import IncomingMessage, Profile, Reply
from bot.runtime import Runtime
from handlers.slack.events import SlackMessage
from handlers.slack.home import home_view
from handlers.slack.rendering import answer_messages, outbound_blocks, to_mrkdwn
from handlers.slack.reply import (
    earlier_answer,
    edit_answer,
    feedback_actions,
    remove_stubs,
    set_status,
    stream_answer,
)

logger = logging.getLogger("deskmate.slack")

SUGGESTED_PROMPTS = [
    {"title": "What can you do?", "message": "help"},
    {"title": "What do you know about me?", "message": "memories"},
    {"title": "Find a policy", "message": "docs travel policy"},
]


async def _users_info(client: AsyncWebClient, user_id: str) -> Profile:
    """Email and name from users.info; the core asks only for people it does not know yet."""
    try:
        response = await client.users_info(user=user_id)
    except (SlackApiError, SlackClientError) as exc:
        logger.warning("users.info failed for %s: %s", user_id, exc)
        return Profile()
    user = response.get("user") or {}
    profile = user.get("profile") or {}
    return Profile(profile.get("email"), profile.get("real_name") or user.get("real_name"))


class SlackInteractions:
    """Each method gets the Web API client Bolt authorised for the request's workspace."""

    def __init__(self, runtime: Runtime, *, multi_workspace: bool) -> None:
        self.runtime = runtime
        self.multi_workspace = multi_workspace

    def tenant_for(self, team_id: str) -> str:
        """Token mode serves the default tenant; each OAuth-installed workspace has its own."""
        return workspace_tenant("slack", team_id) if self.multi_workspace else DEFAULT_TENANT

    async def answer(
        self, message: SlackMessage, client: AsyncWebClient, *, resumed: bool = False
    ) -> None:
        """Answer one user message; the event is marked done, or failed for Slack's retry.
        A `resumed` answer (an earlier attempt did not finish) first reads the thread."""
        ok = False
        try:
            if message.needs_thread_check and not await self._in_thread(message):
                ok = True  # a thread deskmate is not part of: nothing to say
                return
            if resumed and await self._shown_before(message, client):
                ok = True
                return
            incoming = await self._incoming(message, client)
            if message.is_direct:
                await set_status(client, message, "is thinking…")
                await stream_answer(client, message, incoming, self._handle)
            else:
                await edit_answer(client, message, incoming, self._handle)
            ok = True
        finally:
            await self.runtime.events.finish("slack", message.event_key, ok=ok)

    async def _shown_before(self, message: SlackMessage, client: AsyncWebClient) -> bool:
        """Whether an earlier attempt's complete answer is in the thread (its replica died
        before recording it); otherwise clears what a broken-off attempt left there."""
        earlier = await earlier_answer(client, message)
        if earlier.complete:
            logger.info("%s was answered before its attempt was recorded: not again",
                        message.event_key)  # fmt: skip
            return True
        await remove_stubs(client, message, earlier.stubs)
        return False

    async def _handle(self, incoming: IncomingMessage, on_delta: Any) -> Reply:
        return await self.runtime.conversation.handle(incoming, on_delta)

    async def _in_thread(self, message: SlackMessage) -> bool:
        key = f"{message.channel}:{message.thread_ts}"
        tenant = self.tenant_for(message.team_id)
        return await self.runtime.events.conversation_seen("slack", key, tenant)

    async def _incoming(self, message: SlackMessage, client: AsyncWebClient) -> IncomingMessage:
        tenant = self.tenant_for(message.team_id)
        return IncomingMessage(
            platform="slack", user_id=message.user, conversation_id=message.channel,
            text=message.text, is_direct=message.is_direct, tenant=tenant,
            workspace_id=message.team_id, thread_id=message.session_thread,
            message_id=message.ts, lookup_profile=partial(_users_info, client, message.user),
        )  # fmt: skip

    async def command(
        self, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        """`/deskmate …`: answered only to the person who typed it."""
        text = str(command.get("text") or "").strip() or "help"
        message = SlackMessage(
            team_id=str(command.get("team_id", "")), channel=str(command.get("channel_id", "")),
            user=str(command.get("user_id", "")), text=text,
            ts=str(command.get("trigger_id", "")), thread_ts=None, is_direct=True,
        )  # fmt: skip
        incoming = await self._incoming(message, client)
        reply = await self.runtime.conversation.handle(incoming)
        payload = answer_messages(reply, feedback_actions(reply))[0]
        await respond(response_type="ephemeral", replace_original=False, **payload)

    async def click(
        self, click: Click, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        """A deskmate button: the business rule runs; the clicker hears back; the message may
        change (an acknowledged alert).

        The clicker's profile comes along: a click may be the first thing a person ever does
        with deskmate, and the core links them by email only if it has one."""
        profile = await _users_info(client, click.user_id)
        click = replace(click, email=profile.email, display_name=profile.display_name)
        try:
            result = await self.runtime.actions.dispatch(click)
        except DeskmateError as exc:
            await respond(response_type="ephemeral", replace_original=False, text=str(exc))
            return
        container = body.get("container") or {}
        channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
        ts = container.get("message_ts") or (body.get("message") or {}).get("ts")
        if result.replace_with is not None and channel and ts:
            await client.chat_update(channel=channel, ts=ts,
                                          **outbound_blocks(result.replace_with))  # fmt: skip
        await respond(response_type="ephemeral", replace_original=False,
                      text=to_mrkdwn(result.text))  # fmt: skip

    async def suggest_prompts(self, event: dict[str, Any], client: AsyncWebClient) -> None:
        thread = event.get("assistant_thread") or {}
        channel_id = thread.get("channel_id")
        if not channel_id:  # a malformed event: there is no thread to suggest prompts in
            return
        try:
            await client.assistant_threads_setSuggestedPrompts(
                channel_id=channel_id, thread_ts=thread.get("thread_ts"),
                prompts=SUGGESTED_PROMPTS, title="Ask me about your company's documents",
            )  # fmt: skip
        except (SlackApiError, SlackClientError) as exc:
            report_error(exc, where="slack.suggested_prompts")

    async def publish_home(self, user_id: str, team_id: str, client: AsyncWebClient) -> None:
        """App Home: the person's memories (schedules and alerts join as they exist)."""
        message = SlackMessage(team_id, "", user_id, "memories", "home", None, is_direct=True)
        incoming = await self._incoming(message, client)
        home = await self.runtime.conversation.home_of(incoming)
        await client.views_publish(user_id=user_id, view=home_view(home))
