"""Single-workspace (token) mode: what `app_uninstalled` and `tokens_revoked` leave behind.

In OAuth mode Bolt deletes the workspace's installation and deliveries to its tenant stop with
"not installed". A token-mode deployment has one bot token, from SLACK_BOT_TOKEN: once Slack
says it is gone, the fact is recorded in the database (keyed by a fingerprint of that token,
so a new token starts clean and every replica sees the same), and deliveries stop with a
sentence saying what to do instead of Slack's bare `token_revoked`.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.outbound import DeliveryError, Target
from handlers.slack.sender import Resolve
from storage import meta
from storage.database import Database

logger = logging.getLogger("deskmate.slack")

_KEY_PREFIX = "slack_token_revoked:"


def token_fingerprint(token: str) -> str:
    """Names a token in the database without storing anything that could be used as it."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def revokes_bot_token(event: dict[str, Any]) -> bool:
    """`tokens_revoked` lists user (`oauth`) and `bot` tokens; only a bot token is deskmate's."""
    tokens = event.get("tokens")
    return isinstance(tokens, dict) and bool(tokens.get("bot"))


class TokenRevocation:
    """Whether SLACK_BOT_TOKEN was revoked, as recorded by any replica."""

    def __init__(self, db: Database, token: str) -> None:
        self.db = db
        self.key = _KEY_PREFIX + token_fingerprint(token)
        self._reason: str | None = None  # once revoked, a token stays revoked

    async def record(self, team_id: str, why: str) -> None:
        reason = f"deskmate was {why} in Slack workspace {team_id or '?'}"
        logger.warning("%s: deliveries to Slack stop until SLACK_BOT_TOKEN is replaced", reason)
        async with self.db.pool.acquire() as conn:
            await meta.set_value(conn, self.key, reason)
        self._reason = reason

    async def reason(self) -> str | None:
        """Why the token no longer works, or None while it does."""
        if self._reason is None:
            async with self.db.pool.acquire() as conn:
                self._reason = await meta.get_value(conn, self.key)
        return self._reason

    def resolver(self, client: AsyncWebClient) -> Resolve:
        """The sender's client lookup: the one token, unless it was revoked."""

        async def resolve(target: Target) -> AsyncWebClient:
            reason = await self.reason()
            if reason is not None:
                raise DeliveryError(
                    f"{reason}; reinstall the app and set the new SLACK_BOT_TOKEN",
                    retryable=False,
                )
            return client

        return resolve


def add_revocation_listeners(bolt: AsyncApp, revocation: TokenRevocation) -> None:
    """Token mode's answer to Slack taking the token back: recorded before the ack."""

    @bolt.event("app_uninstalled")
    async def on_uninstalled(body: dict[str, Any]) -> None:
        await revocation.record(str(body.get("team_id") or ""), "uninstalled")

    @bolt.event("tokens_revoked")
    async def on_tokens_revoked(body: dict[str, Any], event: dict[str, Any]) -> None:
        if revokes_bot_token(event):
            await revocation.record(str(body.get("team_id") or ""), "revoked")
