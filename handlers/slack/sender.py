"""Posting into Slack on deskmate's own initiative: paced per channel, 429-aware, idempotent."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.outbound import Delivery, DeliveryError, Outbound, Target
from bot.settings import Settings
from handlers.slack.rendering import outbound_blocks

# Slack allows about one message per second per channel; bursts beyond it get 429s.
SECONDS_BETWEEN_POSTS = 1.0
# Errors that will not go away by trying again.
PERMANENT_ERRORS = {
    "channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "account_inactive",
    "token_revoked", "no_permission", "missing_scope", "msg_too_long", "invalid_blocks",
    "restricted_action", "message_not_found", "cant_update_message",
}  # fmt: skip
DELIVERY_EVENT = "deskmate_delivery"
# How far back `find` looks: from the first attempt (`since`), less a margin for the database's
# and Slack's clocks disagreeing; a caller that cannot say when it first tried gets a day.
CLOCK_MARGIN = dt.timedelta(minutes=5)
DEFAULT_LOOKBACK = dt.timedelta(days=1)
HISTORY_PAGE = 200  # Slack's advice for conversations.history pages


def slack_client(settings: Settings, token: str | None) -> AsyncWebClient:
    """A Web API client on SLACK_API_URL that waits out 429s (Retry-After) a few times."""
    return AsyncWebClient(
        token=token,
        base_url=settings.slack_api_url,
        retry_handlers=[
            AsyncRateLimitErrorRetryHandler(max_retry_count=2),
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
        ],
    )


class ChannelPacer:
    """At most one post per channel per interval, across every task of this process."""

    def __init__(self, interval: float = SECONDS_BETWEEN_POSTS) -> None:
        self.interval = interval
        self._next: dict[str, float] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def wait(self, channel: str) -> None:
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            delay = self._next.get(channel, 0.0) - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self._next[channel] = time.monotonic() + self.interval


def delivery_error(exc: SlackClientError) -> DeliveryError:
    """A Slack SDK failure as deskmate's DeliveryError (the token never appears)."""
    if isinstance(exc, SlackApiError):
        error = str(exc.response.get("error", "unknown_error"))
        retry_after = exc.response.headers.get("Retry-After") if exc.response.headers else None
        return DeliveryError(
            f"Slack refused the message: {error}",
            retryable=error not in PERMANENT_ERRORS,
            retry_after=float(retry_after) if retry_after else None,
        )
    return DeliveryError(f"Slack could not be reached: {type(exc).__name__}", retryable=True)


Resolve = Callable[[Target], Awaitable[AsyncWebClient]]


class SlackSender:
    """`bot.outbound.Sender` for Slack: one token, or (multi-workspace) the token of the
    workspace behind each target's tenant, found by `resolve`."""

    platform = "slack"

    def __init__(
        self, client: AsyncWebClient, pacer: ChannelPacer | None = None,
        *, resolve: Resolve | None = None,
    ) -> None:  # fmt: skip
        self.client = client
        self.pacer = pacer or ChannelPacer()
        self._resolve = resolve

    async def _client(self, target: Target) -> AsyncWebClient:
        return await self._resolve(target) if self._resolve else self.client

    async def post(self, target: Target, message: Outbound) -> Delivery:
        payload: dict[str, Any] = outbound_blocks(message)
        if message.idempotency_key:
            payload["metadata"] = {"event_type": DELIVERY_EVENT,
                                   "event_payload": {"key": message.idempotency_key}}  # fmt: skip
        await self.pacer.wait(target.channel)
        try:
            client = await self._client(target)
            response = await client.chat_postMessage(
                channel=target.channel, thread_ts=target.thread, unfurl_links=False, **payload
            )
        except (SlackApiError, SlackClientError) as exc:
            raise delivery_error(exc) from exc
        ts = str(response["ts"])
        return Delivery(message_id=ts, thread=target.thread or ts)

    async def update(self, target: Target, message_id: str, message: Outbound) -> None:
        try:
            client = await self._client(target)
            await client.chat_update(channel=target.channel, ts=message_id,
                                          **outbound_blocks(message))  # fmt: skip
        except (SlackApiError, SlackClientError) as exc:
            raise delivery_error(exc) from exc

    async def find(
        self, target: Target, idempotency_key: str, *, since: dt.datetime | None = None
    ) -> Delivery | None:
        """Look through every message of the channel (or of `target.thread`) posted since the
        first attempt, page by page, for one carrying the key: however busy the channel, a
        retry finds its earlier post."""
        oldest = (since or dt.datetime.now(dt.UTC) - DEFAULT_LOOKBACK) - CLOCK_MARGIN
        try:
            client = await self._client(target)
            async for item in _messages_since(client, target, oldest):
                metadata = item.get("metadata") or {}
                payload = metadata.get("event_payload") or {}
                if (
                    metadata.get("event_type") == DELIVERY_EVENT
                    and payload.get("key") == idempotency_key
                ):
                    ts = str(item["ts"])
                    return Delivery(message_id=ts, thread=target.thread or ts)
        except (SlackApiError, SlackClientError) as exc:
            raise delivery_error(exc) from exc
        return None


async def _messages_since(
    client: AsyncWebClient, target: Target, oldest: dt.datetime
) -> AsyncIterator[dict[str, Any]]:
    """The channel's messages (a thread's replies, when the target has a thread) after
    `oldest`, following Slack's cursor to the end."""
    query: dict[str, Any] = {"channel": target.channel, "oldest": f"{oldest.timestamp():.6f}",
                             "limit": HISTORY_PAGE, "include_all_metadata": True}  # fmt: skip
    while True:
        if target.thread:
            response = await client.conversations_replies(ts=target.thread, **query)
        else:
            response = await client.conversations_history(**query)
        for item in response.get("messages") or []:
            yield item
        cursor = (response.get("response_metadata") or {}).get("next_cursor")
        if not response.get("has_more") or not cursor:
            return
        query["cursor"] = cursor
