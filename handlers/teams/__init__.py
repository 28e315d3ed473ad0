"""Microsoft Teams through the Microsoft 365 Agents SDK on `POST /api/messages`.

The route is JWT-authorised by the SDK's middleware (that route only). Route handlers parse the
activity, store the conversation's reference, claim the message and hand the slow part to the
runtime's spawner, so the HTTP answer (202) leaves before Claude is asked anything; the answer
is then sent proactively in the same conversation. Card clicks are answered in the invoke
response (they are quick), the card update follows in the background.
"""

from __future__ import annotations

import logging
import warnings

import pydantic
from aiohttp import web
from microsoft_agents.activity import (
    Activity,
    ActivityTypes,
    AdaptiveCardInvokeResponse,
    DeliveryModes,
    InvokeResponse,
)
from microsoft_agents.hosting.aiohttp import jwt_authorization_decorator, start_agent_process
from microsoft_agents.hosting.core import TurnContext, TurnState

from bot.runtime import Runtime
from bot.spawner import ANSWERS
from handlers.teams.activities import (
    CARD_ACTION_INVOKE,
    TEAMS,
    activity_payload,
    click_data,
    click_from_activity,
    conversation_record,
    message_from_activity,
    missing_parts,
)
from handlers.teams.connector import ConnectorPolicy
from handlers.teams.gate import read_body, token_gate
from handlers.teams.interactions import TeamsInteractions
from handlers.teams.references import ConversationBook
from handlers.teams.sdk import TeamsSdk
from handlers.teams.sender import TeamsSender

logger = logging.getLogger("deskmate.teams")

# What Teams shows the clicker of an Action.Execute button next to the card.
INVOKE_MESSAGE = "application/vnd.microsoft.activity.message"
# The answer to a click on a button deskmate did not make (another app's card, no data).
NOT_OUR_BUTTON = "That button isn't one of deskmate's, so nothing was done."
# Activities deskmate only remembers the conversation of (the SDK warns about unrouted ones).
QUIET_ACTIVITIES: list[str | ActivityTypes] = [
    ActivityTypes.conversation_update, ActivityTypes.installation_update,
    ActivityTypes.message_reaction, ActivityTypes.message_update, ActivityTypes.message_delete,
    ActivityTypes.typing, ActivityTypes.event, ActivityTypes.end_of_conversation,
]  # fmt: skip
# The key under which the SDK's JWT middleware looks for its configuration on the aiohttp app.
SDK_AUTH_CONFIG_KEY = "agent_configuration"


def card_message(text: str) -> AdaptiveCardInvokeResponse:
    """The Universal Actions answer that shows `text` to the clicker."""
    return AdaptiveCardInvokeResponse(status_code=200, type=INVOKE_MESSAGE, value=text)


async def answer_invoke(context: TurnContext, body: AdaptiveCardInvokeResponse | None) -> None:
    """Set the HTTP answer of an invoke turn: 200, with `body` when there is one."""
    value = body.model_dump(mode="json", by_alias=True, exclude_none=True) if body else None
    response = InvokeResponse(status=200, body=value)
    await context.send_activity(Activity(type=ActivityTypes.invoke_response, value=response))


def add_routes(
    sdk: TeamsSdk, runtime: Runtime, book: ConversationBook, work: TeamsInteractions
) -> None:
    """deskmate's listeners on the AgentApplication."""
    agent = sdk.agent

    async def resume(payload: dict[str, object], attempt: int) -> None:
        # Teams answers anew whatever the attempt: its replies carry no mark to look for.
        activity = Activity.model_validate(payload)
        message = message_from_activity(activity)
        if message is not None:
            await work.answer(message, activity, sdk.bot_identity())

    runtime.events.on_resume(TEAMS, resume)

    @agent.before_turn
    async def remember_conversation(context: TurnContext, state: TurnState) -> bool:
        record = conversation_record(context.activity)
        if record is not None:
            await book.remember(record)
        return True

    @agent.activity(QUIET_ACTIVITIES)
    async def nothing_more(context: TurnContext, state: TurnState) -> None:
        """Installs, member changes, reactions, edits: remembering the conversation (above) is
        all deskmate does with them."""

    @agent.invoke(CARD_ACTION_INVOKE)
    async def on_card_action(context: TurnContext, state: TurnState) -> None:
        """Every Action.Execute click, with or without a verb: Teams shows the text."""
        click = click_from_activity(context.activity)
        if click is None:
            await answer_invoke(context, card_message(NOT_OUR_BUTTON))
            return
        result = await work.click(await work.identify(context, click))
        activity = context.activity.model_copy(deep=True)
        runtime.tasks.spawn(work.after_click(result, activity, say=False),
                            name=f"teams-card-update:{click.kind}")  # fmt: skip
        await answer_invoke(context, card_message(result.text))

    @agent.invoke()
    async def on_other_invoke(context: TurnContext, state: TurnState) -> None:
        """Invokes of Teams features deskmate does not offer (dialogs, message extensions,
        sign-in…): a plain 200 rather than the SDK's 501, which Teams shows as an error."""
        await answer_invoke(context, None)

    @agent.message()
    async def on_message(context: TurnContext, state: TurnState) -> None:
        activity = context.activity
        if click_data(activity) is not None:
            click = click_from_activity(activity)
            if click is not None:
                identity = context.identity or sdk.bot_identity()
                runtime.tasks.spawn(work.submit(click, activity.model_copy(deep=True), identity),
                                    name=f"teams-click:{click.kind}")  # fmt: skip
            return
        message = message_from_activity(activity)
        # The activity is stored with the claim, before the HTTP answer: if this replica dies
        # mid-answer, another one answers from it (Teams does not redeliver what it saw taken).
        if message is None or not await runtime.events.claim(
            TEAMS, message.event_key, payload=activity_payload(activity)
        ):
            return
        if activity.delivery_mode == DeliveryModes.expect_replies:
            # The caller waits for the answer in this very response and gave no way to post
            # later, so the answer is worked out before the turn ends.
            await work.answer_in_turn(context, message)
            return
        # The adapter gives every inbound turn the request's identity; a turn without one
        # answers as deskmate itself, like a proactive post.
        identity = context.identity or sdk.bot_identity()
        runtime.tasks.spawn(
            work.answer(message, activity.model_copy(deep=True), identity),
            name=f"teams-answer:{message.event_key}",
            lane=ANSWERS,
        )


def install(app: web.Application, runtime: Runtime) -> None:
    """Add `POST /api/messages` and the Teams sender."""
    settings = runtime.settings
    if settings.teams_anonymous_allowed:
        logger.warning(
            "Teams: ANONYMOUS_ALLOWED is set, /api/messages accepts requests without a token "
            "(local testing only; never expose this service like that)"
        )
    elif settings.teams_client_secret is None:
        logger.warning("Teams: no CLIENTSECRET is set; replies to Teams will be refused")
    sdk = TeamsSdk(settings)
    sdk.adapter.use(ConnectorPolicy())
    book = ConversationBook(runtime.db)
    sender = TeamsSender(sdk, book)
    runtime.senders.register(sender)
    add_routes(sdk, runtime, book, TeamsInteractions(runtime, sdk, sender))
    with warnings.catch_warnings():
        # The SDK's middleware reads its configuration under this plain string key.
        warnings.simplefilter("ignore", web.NotAppKeyWarning)
        app[SDK_AUTH_CONFIG_KEY] = sdk.auth_config

    async def messages(request: web.Request) -> web.StreamResponse:
        await read_body(request)
        try:
            missing = missing_parts(Activity.model_validate_json(await request.read()))
        except pydantic.ValidationError:
            raise web.HTTPBadRequest(text="malformed activity") from None
        if missing is not None:
            raise web.HTTPBadRequest(text=f"malformed activity: no {missing}")
        try:
            response = await start_agent_process(request, sdk.agent, sdk.adapter)
        except pydantic.ValidationError:
            raise web.HTTPBadRequest(text="malformed activity") from None
        return response if response is not None else web.Response(status=202)

    app.router.add_post("/api/messages", token_gate(jwt_authorization_decorator(messages)))
