"""Multi-workspace Slack: the OAuth install flow with installations and states in PostgreSQL.

Used when SLACK_CLIENT_ID/SECRET are set; each installed workspace becomes a tenant of its own.
The SDK's store interfaces are implemented over `bot.installations`, which owns the SQL.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.oauth.installation_store import Bot, Installation
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore

from bot.installations import SlackInstallations
from bot.settings import Settings

logger = logging.getLogger("deskmate.slack.oauth")

# Exactly the scopes slack/manifest.yaml asks for.
BOT_SCOPES = [
    "app_mentions:read", "assistant:write", "channels:history", "groups:history", "im:history",
    "chat:write", "commands", "users:read", "users:read.email",
]  # fmt: skip


def _jsonable(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v.timestamp() if isinstance(v, dt.datetime) else v for k, v in data.items()}


class PostgresInstallationStore(AsyncInstallationStore):
    """slack_sdk's installation store over deskmate's database (one row per workspace)."""

    def __init__(self, installations: SlackInstallations) -> None:
        self.installations = installations

    @property
    def logger(self) -> logging.Logger:
        return logger

    async def async_save(self, installation: Installation) -> None:
        data = _jsonable(installation.to_dict_for_copying())
        await self.installations.save(
            installation.enterprise_id or "", installation.team_id or "",
            installation.team_name or "", data, installer=installation.user_id,
            enterprise_install=bool(installation.is_enterprise_install),
            bot_user_id=installation.bot_user_id,
        )  # fmt: skip

    async def async_save_bot(self, bot: Bot) -> None:
        """Bots are saved with their installation; nothing else to keep."""

    async def async_find_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:  # fmt: skip
        data = await self.installations.find(
            enterprise_id or "", "" if is_enterprise_install else team_id or ""
        )
        return Installation(**data) if data else None

    async def async_find_bot(
        self, *, enterprise_id: str | None, team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:  # fmt: skip
        installation = await self.async_find_installation(
            enterprise_id=enterprise_id, team_id=team_id,
            is_enterprise_install=is_enterprise_install,
        )  # fmt: skip
        return installation.to_bot() if installation and installation.bot_token else None

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        if user_id is None:  # a user token being revoked leaves the bot installed
            await self.installations.delete(enterprise_id or "", team_id or "")

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self.installations.delete(enterprise_id or "", team_id or "")

    async def async_delete_all(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await self.installations.delete(enterprise_id or "", team_id or "")


class PostgresStateStore(AsyncOAuthStateStore):
    """OAuth `state` values, single use, expiring after ten minutes."""

    def __init__(self, installations: SlackInstallations) -> None:
        self.installations = installations

    @property
    def logger(self) -> logging.Logger:
        return logger

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        return await self.installations.issue_state()

    async def async_consume(self, state: str) -> bool:
        return await self.installations.consume_state(state)


def oauth_settings(settings: Settings, installations: SlackInstallations) -> AsyncOAuthSettings:
    assert settings.slack_client_id and settings.slack_client_secret
    store = PostgresInstallationStore(installations)
    return AsyncOAuthSettings(
        client_id=settings.slack_client_id,
        client_secret=settings.slack_client_secret.get_secret_value(),
        scopes=BOT_SCOPES,
        installation_store=store,
        state_store=PostgresStateStore(installations),
        install_path="/slack/install",
        redirect_uri_path="/slack/oauth_redirect",
    )


def add_oauth_routes(app: web.Application, bolt: AsyncApp) -> None:
    """`GET /slack/install` starts the flow; `GET /slack/oauth_redirect` finishes it."""
    flow = bolt.oauth_flow
    assert flow is not None

    async def install_page(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await flow.handle_installation(
            await to_bolt_request(request)))  # fmt: skip

    async def oauth_redirect(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await flow.handle_callback(
            await to_bolt_request(request)))  # fmt: skip

    app.router.add_get("/slack/install", install_page)
    app.router.add_get("/slack/oauth_redirect", oauth_redirect)
