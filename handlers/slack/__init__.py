"""Slack through Bolt: events, slash command and buttons on `POST /slack/events`.

Listeners only parse, claim the event and hand the slow part to the runtime's spawner, so Bolt
acknowledges well inside Slack's 3 seconds (`process_before_response=True` makes the HTTP
response wait for the listener, which is now quick, and never for the answer). The runtime is
reached through this module's closure, not Bolt's copied context.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.actions import Click
from bot.errors import report_error
from bot.installations import SlackInstallations
from bot.outbound import DeliveryError, Target
from bot.runtime import Runtime
from handlers.slack import interactions
from handlers.slack.events import message_from_event
from handlers.slack.oauth import add_oauth_routes, oauth_settings
from handlers.slack.rendering import parse_action_id
from handlers.slack.sender import Resolve, SlackSender, slack_client

logger = logging.getLogger("deskmate.slack")


def build_bolt(runtime: Runtime, client: AsyncWebClient) -> AsyncApp:
    """The Bolt app with deskmate's listeners: token mode, or OAuth when SLACK_CLIENT_ID is set."""
    settings = runtime.settings
    assert settings.slack_signing_secret is not None, "Slack needs SLACK_SIGNING_SECRET"
    multi = settings.slack_client_id is not None
    bolt = AsyncApp(
        client=client,
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        process_before_response=True,
        raise_error_for_unhandled_request=False,
        oauth_settings=oauth_settings(settings, SlackInstallations(runtime.db)) if multi else None,
    )
    if multi:
        bolt.enable_token_revocation_listeners()  # app_uninstalled, tokens_revoked
    work = interactions.SlackInteractions(runtime, multi_workspace=multi)
    _add_listeners(bolt, runtime, work)
    return bolt


def _add_listeners(bolt: AsyncApp, runtime: Runtime, work: interactions.SlackInteractions) -> None:
    spawn = runtime.tasks.spawn

    async def on_message_event(
        body: dict[str, Any],
        event: dict[str, Any],
        context: dict[str, Any],
        client: AsyncWebClient,
    ) -> None:
        message = message_from_event(event, bot_user_id=str(context.get("bot_user_id") or ""),
                                     team_id=str(body.get("team_id") or ""))  # fmt: skip
        if message is None:
            return
        if await runtime.events.claim("slack", message.event_key,
                                      work.tenant_for(message.team_id)):  # fmt: skip
            spawn(work.answer(message, client), name=f"slack-answer:{message.event_key}")

    bolt.event("app_mention")(on_message_event)
    bolt.event("message")(on_message_event)

    @bolt.event("assistant_thread_started")
    async def on_thread_started(event: dict[str, Any], client: AsyncWebClient) -> None:
        spawn(work.suggest_prompts(event, client), name="slack-suggested-prompts")

    @bolt.event("app_home_opened")
    async def on_home(event: dict[str, Any], body: dict[str, Any],
                      client: AsyncWebClient) -> None:  # fmt: skip
        spawn(work.publish_home(str(event["user"]), str(body.get("team_id", "")), client),
              name="slack-home")  # fmt: skip

    @bolt.command("/deskmate")
    async def on_command(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond,
                         client: AsyncWebClient) -> None:  # fmt: skip
        await ack()
        spawn(work.command(command, respond, client), name="slack-command")

    @bolt.action(re.compile(r"^deskmate:"))
    async def on_button(ack: AsyncAck, body: dict[str, Any], action: dict[str, Any],
                        respond: AsyncRespond, client: AsyncWebClient) -> None:  # fmt: skip
        await ack()
        kind = parse_action_id(str(action.get("action_id", "")))
        if kind is None:
            return
        team = str((body.get("team") or {}).get("id", ""))
        click = Click(kind=kind, value=str(action.get("value", "")), platform="slack",
                      user_id=str(body["user"]["id"]), workspace_id=team,
                      tenant=work.tenant_for(team))  # fmt: skip
        spawn(work.click(click, body, respond, client), name=f"slack-click:{kind}")

    @bolt.error
    async def on_error(error: Exception) -> None:
        report_error(error, where="slack")


def install(app: web.Application, runtime: Runtime) -> None:
    """Add `POST /slack/events` (and the OAuth routes in multi-workspace mode), the Slack
    sender, and Socket Mode when SLACK_APP_TOKEN is set."""
    settings = runtime.settings
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    client = slack_client(settings, token)
    bolt = build_bolt(runtime, client)
    if settings.slack_client_id is not None:
        add_oauth_routes(app, bolt)
        runtime.senders.register(SlackSender(client, resolve=_installed_client(runtime)))
    else:
        runtime.senders.register(SlackSender(client))

    async def slack_events(request: web.Request) -> web.Response:
        try:
            bolt_request = await to_bolt_request(request)  # parses the body
        except ValueError:
            return web.json_response({"error": "malformed Slack payload"}, status=400)
        return await to_aiohttp_response(await bolt.async_dispatch(bolt_request))

    app.router.add_post("/slack/events", slack_events)
    if settings.slack_app_token is not None:
        _install_socket_mode(app, runtime, bolt)


def _installed_client(runtime: Runtime) -> Resolve:
    """Multi-workspace senders: the bot token of the workspace behind the target's tenant."""
    installations = SlackInstallations(runtime.db)

    async def resolve(target: Target) -> AsyncWebClient:
        data = await installations.find_for_tenant(target.tenant)
        if not data or not data.get("bot_token"):
            raise DeliveryError(f"deskmate is not installed for tenant {target.tenant}",
                                retryable=False)  # fmt: skip
        return slack_client(runtime.settings, str(data["bot_token"]))

    return resolve


def _install_socket_mode(app: web.Application, runtime: Runtime, bolt: AsyncApp) -> None:
    from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

    settings = runtime.settings
    assert settings.slack_app_token is not None
    handler = AsyncSocketModeHandler(bolt, settings.slack_app_token.get_secret_value())
    handler.client.web_client = slack_client(settings, None)

    async def connect(_: web.Application) -> None:
        await handler.connect_async()
        logger.info("Slack Socket Mode connected")

    async def close(_: web.Application) -> None:
        await handler.close_async()

    app.on_startup.append(connect)
    app.on_cleanup.append(close)
