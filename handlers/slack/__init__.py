"""Slack through Bolt: events, slash command and buttons on `POST /slack/events`.

Listeners only parse, claim the event and hand the slow part to the runtime's spawner, so Bolt
acknowledges well inside Slack's 3 seconds (`process_before_response=True` makes the HTTP
response wait for the listener, which is now quick, and never for the answer). The runtime is
reached through this module's closure, not Bolt's copied context.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_bolt.error import BoltUnhandledRequestError
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.actions import Click
from bot.errors import ConfigError, report_error
from bot.installations import SlackInstallations
from bot.outbound import DeliveryError, Target
from bot.runtime import Runtime
from bot.spawner import ANSWERS
from handlers.slack import interactions
from handlers.slack.events import (
    SLACKBOT,
    MessageEvent,
    SlackMessage,
    is_retry,
    message_event,
    message_from_event,
    reference_id,
)
from handlers.slack.oauth import add_oauth_routes, oauth_settings
from handlers.slack.rendering import parse_action_id
from handlers.slack.requests import Rejected, accepted_request
from handlers.slack.revocation import TokenRevocation, add_revocation_listeners
from handlers.slack.sender import Resolve, SlackSender, slack_client

logger = logging.getLogger("deskmate.slack")


def build_bolt(
    runtime: Runtime, client: AsyncWebClient, revocation: TokenRevocation | None = None
) -> AsyncApp:
    """The Bolt app with deskmate's listeners: token mode, or OAuth when SLACK_CLIENT_ID is set.
    In token mode, `revocation` records the token's end when Slack announces it."""
    settings = runtime.settings
    if settings.slack_signing_secret is None:
        raise ConfigError("SLACK_SIGNING_SECRET is not set: Slack requests cannot be verified")
    multi = settings.slack_client_id is not None
    bolt = AsyncApp(
        client=client,
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        process_before_response=True,
        # Unhandled requests reach on_error, which answers them 200 (see there).
        raise_error_for_unhandled_request=True,
        oauth_settings=oauth_settings(settings, SlackInstallations(runtime.db)) if multi else None,
    )
    if multi:
        bolt.enable_token_revocation_listeners()  # app_uninstalled, tokens_revoked
    elif revocation is not None:
        add_revocation_listeners(bolt, revocation)
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
        # The payload is stored with the claim, before Bolt acks: if this replica dies
        # mid-answer, another one answers from it (Slack does not redeliver an acked event).
        if await runtime.events.claim("slack", message.event_key, work.tenant_for(message.team_id),
                                      payload=dataclasses.asdict(message)):  # fmt: skip
            spawn(work.answer(message, client), name=f"slack-answer:{message.event_key}",
                  lane=ANSWERS)  # fmt: skip

    bolt.event("app_mention")(on_message_event)
    bolt.event("message")(on_message_event)

    # Prompts and the Home tab are spawned before the ack, so a retry (the ack was late)
    # would only do the same work twice.
    @bolt.event("assistant_thread_started")
    async def on_thread_started(event: dict[str, Any], request: AsyncBoltRequest,
                                client: AsyncWebClient) -> None:  # fmt: skip
        if not is_retry(request.headers):
            spawn(work.suggest_prompts(event, client), name="slack-suggested-prompts")

    @bolt.event("app_home_opened")
    async def on_home(event: dict[str, Any], body: dict[str, Any], request: AsyncBoltRequest,
                      client: AsyncWebClient) -> None:  # fmt: skip
        user = str(event.get("user") or "")
        if user and user != SLACKBOT and not is_retry(request.headers):
            spawn(work.publish_home(user, str(body.get("team_id") or ""), client),
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
        clicker, team = reference_id(body.get("user")), reference_id(body.get("team"))
        if kind is None or not clicker:
            return
        click = Click(kind=kind, value=str(action.get("value", "")), platform="slack",
                      user_id=clicker, workspace_id=team, tenant=work.tenant_for(team))  # fmt: skip
        spawn(work.click(click, body, respond, client), name=f"slack-click:{kind}")

    @bolt.error
    async def on_error(error: Exception) -> BoltResponse | None:
        if isinstance(error, BoltUnhandledRequestError):
            # A verified request deskmate has no use for (another app's button, an event it
            # does not act on): Slack counts anything but a 2xx against the app.
            logger.debug("acknowledged a Slack request deskmate does not handle")
            return BoltResponse(status=200, body="")
        report_error(error, where="slack")
        return None


def install(app: web.Application, runtime: Runtime) -> None:
    """Add `POST /slack/events` (and the OAuth routes in multi-workspace mode), the Slack
    sender, and Socket Mode when SLACK_APP_TOKEN is set."""
    settings = runtime.settings
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    client = slack_client(settings, token)
    # Token mode: Slack's word that the one token is gone stops deliveries with a reason.
    token_mode = token is not None and settings.slack_client_id is None
    revocation = TokenRevocation(runtime.db, token) if token and token_mode else None
    bolt = build_bolt(runtime, client, revocation)
    resolve = _installed_client(runtime) if settings.slack_client_id is not None else None
    if resolve is not None:
        add_oauth_routes(app, bolt)
    revoked = revocation.resolver(client) if revocation else None
    runtime.senders.register(SlackSender(client, resolve=resolve or revoked))
    intake = MessageIntake(runtime, client, resolve)
    runtime.events.on_resume("slack", intake.answer)

    signing = settings.slack_signing_secret  # build_bolt refused to go on without it
    secret = signing.get_secret_value() if signing else ""

    async def slack_events(request: web.Request) -> web.Response:
        try:
            accepted = await accepted_request(request, secret)
        except Rejected as refused:
            return web.json_response({"error": str(refused)}, status=refused.status)
        event = message_event(accepted.payload)
        if event is not None:
            await intake.accept(event)
            return web.Response(status=200)
        return await to_aiohttp_response(await bolt.async_dispatch(accepted.for_bolt()))

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


class MessageIntake:
    """Slack's hot path: people's messages, accepted without Bolt's middleware chain.

    At a few hundred senders at once, Bolt's per-request work (about a millisecond of this
    process's one event loop: a second parse, a second signature check, context, matching)
    queued acks for seconds, past Slack's 3 s, and Slack's redeliveries doubled the load. A
    message event needs none of it once `requests.py` has checked it: the claim stores it
    (payload with the claim), the ack follows, and the answer runs in the background. Everything
    else (commands, buttons, other events) still goes through Bolt.
    """

    def __init__(self, runtime: Runtime, client: AsyncWebClient, resolve: Resolve | None) -> None:
        self.runtime = runtime
        self.client = client
        self.resolve = resolve
        self.work = interactions.SlackInteractions(runtime, multi_workspace=resolve is not None)

    async def accept(self, event: MessageEvent) -> None:
        """Claim the message (raising when the database cannot record it: no ack then, so
        Slack redelivers) and start its answer; twins and retries are dropped by the claim."""
        message = event.message
        if message is None:
            return
        payload = dataclasses.asdict(message)
        tenant = self.work.tenant_for(message.team_id)
        if await self.runtime.events.claim("slack", message.event_key, tenant, payload=payload):
            self.runtime.tasks.spawn(self.answer(payload), name=f"slack-answer:{message.event_key}",
                                     lane=ANSWERS)  # fmt: skip

    async def answer(self, payload: dict[str, Any], attempt: int = 1) -> None:
        """Answer a stored message: just accepted, or resumed (`attempt` > 1) after its
        replica died, when what that one showed is looked for first."""
        message = SlackMessage(**payload)
        chosen = self.client
        if self.resolve is not None:
            tenant = self.work.tenant_for(message.team_id)
            chosen = await self.resolve(Target("slack", message.channel, tenant=tenant))
        await self.work.answer(message, chosen, resumed=attempt > 1)


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
