"""The Microsoft 365 Agents SDK objects deskmate's Teams edge is built from.

Credentials come from our Settings, which read the SDK's own variable names
(`CONNECTIONS__SERVICE_CONNECTION__SETTINGS__CLIENTID/CLIENTSECRET/TENANTID/ANONYMOUS_ALLOWED`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from microsoft_agents.activity import Activity, ConversationParameters
from microsoft_agents.authentication.msal import MsalConnectionManager
from microsoft_agents.hosting.aiohttp import CloudAdapter
from microsoft_agents.hosting.core import (
    AgentApplication,
    AgentAuthConfiguration,
    ApplicationOptions,
    ClaimsIdentity,
    Storage,
    TurnContext,
    TurnState,
)
from microsoft_agents.hosting.core.authorization import AuthenticationConstants
from microsoft_agents.hosting.core.storage.store_item import StoreItem

from bot.settings import Settings

logger = logging.getLogger("deskmate.teams")

MSTEAMS = "msteams"  # the Bot Framework channel id of Teams


def sdk_configuration(settings: Settings) -> dict[str, Any]:
    """The SDK's configuration dictionary (what `load_configuration_from_env` would build)."""
    connection: dict[str, Any] = {"ANONYMOUS_ALLOWED": settings.teams_anonymous_allowed}
    if settings.teams_client_id:
        connection["CLIENTID"] = settings.teams_client_id
    if settings.teams_client_secret is not None:
        connection["CLIENTSECRET"] = settings.teams_client_secret.get_secret_value()
    if settings.teams_tenant_id:
        connection["TENANTID"] = settings.teams_tenant_id
    return {"CONNECTIONS": {"SERVICE_CONNECTION": {"SETTINGS": connection}}}


class NoTurnState(Storage):
    """deskmate keeps no per-turn SDK state: sessions and conversation references live in
    PostgreSQL. The SDK's MemoryStorage would instead grow with every conversation seen."""

    async def read[T: StoreItem](
        self, keys: list[str], *, target_cls: type[T], **kwargs: Any
    ) -> dict[str, T]:
        return {}

    async def write(self, changes: dict[str, StoreItem]) -> None:
        return None

    async def delete(self, keys: list[str]) -> None:
        return None


class AnonymousIdentity(ClaimsIdentity):
    """deskmate without an app id (local testing with ANONYMOUS_ALLOWED). It stays anonymous
    when the SDK adds claims to it: `create_conversation` adds the service URL, which would
    otherwise make a plain ClaimsIdentity ask MSAL for a token it cannot get."""

    @property
    def allow_anonymous(self) -> bool:
        return True


class DeskmateAdapter(CloudAdapter):
    """The SDK's aiohttp adapter; without an app id its own outbound identity is anonymous."""

    def create_claims_identity(self, agent_app_id: str = "") -> ClaimsIdentity:
        # The SDK builds {aud: "", appid: ""} for an empty app id, which is not anonymous.
        if not agent_app_id:
            return AnonymousIdentity()
        return super().create_claims_identity(agent_app_id)


class TeamsSdk:
    """The connection manager, adapter and agent application of one process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        config = sdk_configuration(settings)
        self.connections = MsalConnectionManager(**config)
        self.auth_config: AgentAuthConfiguration = (
            self.connections.get_default_connection_configuration()
        )
        self.adapter = DeskmateAdapter(connection_manager=self.connections)
        # Without a turn error handler the adapter re-raises: an inbound failure becomes a 500
        # from our error middleware (one error path, and Teams may redeliver), and a proactive
        # one reaches its caller. The SDK's default would post the exception text into the chat.
        self.adapter.on_turn_error = None
        self.agent = AgentApplication[TurnState](
            ApplicationOptions(
                storage=NoTurnState(),
                # The answer is computed after the request returns, so the SDK's in-turn typing
                # timer would stop at once; deskmate sends its own while it works.
                start_typing_timer=False,
                # Mentions are removed by our own parser, which tests can call without the SDK.
                remove_recipient_mention=False,
            ),
            connection_manager=self.connections,
        )

    @property
    def app_id(self) -> str:
        return self.settings.teams_client_id or ""

    def bot_identity(self) -> ClaimsIdentity:
        """Who deskmate is when it speaks first (proactive posts): the configured app, or
        anonymous in local testing without an app id."""
        return self.adapter.create_claims_identity(self.app_id)

    async def in_turn[T](
        self,
        identity: ClaimsIdentity,
        activity: Activity,
        work: Callable[[TurnContext], Awaitable[T]],
    ) -> T:
        """Run `work` in a turn of the conversation `activity` belongs to (the SDK's proactive
        path: a connector client for that conversation, our middleware) and return its result;
        its exception propagates to the caller."""
        results: list[T] = []

        async def callback(context: TurnContext) -> None:
            results.append(await work(context))

        await self.adapter.continue_conversation_with_claims(identity, activity, callback)
        return _only(results)

    async def in_new_conversation[T](
        self,
        service_url: str,
        parameters: ConversationParameters,
        work: Callable[[TurnContext], Awaitable[T]],
    ) -> T:
        """Create a conversation (a channel post, a personal chat) and run `work` in its first
        turn; `context.activity.id` is the created post's id."""
        results: list[T] = []

        async def callback(context: TurnContext) -> None:
            results.append(await work(context))

        await self.adapter.create_conversation(
            self.app_id, MSTEAMS, service_url, AuthenticationConstants.AGENTS_SDK_SCOPE,
            parameters, callback,
        )  # fmt: skip
        return _only(results)


def _only[R](results: list[R]) -> R:
    if not results:
        raise RuntimeError("the Teams turn ended before its work ran")
    return results[0]
