"""Talking to the Bot Connector politely: paced per conversation, retried when Teams asks.

Teams allows a bot about 7 messages per second per conversation and answers 429 (and, under
load, 412/502/504) beyond it. Every send and update of every turn (answers, streaming updates,
proactive posts) goes through `ConnectorPolicy`, an adapter middleware; connector errors become
`bot.outbound.DeliveryError` where the scheduler needs them.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Awaitable, Callable

import aiohttp
from microsoft_agents.activity import Activity, ActivityTypes, DeliveryModes, ResourceResponse
from microsoft_agents.hosting.core import TurnContext

from bot.outbound import DeliveryError
from bot.retry import retry_after_seconds
from handlers.teams.activities import split_conversation_id

logger = logging.getLogger("deskmate.teams")

Sleep = Callable[[float], Awaitable[None]]

RETRYABLE_STATUSES = frozenset({412, 429, 502, 504})
MAX_ATTEMPTS = 4
BASE_DELAY_SECONDS = 0.5
MAX_DELAY_SECONDS = 30.0
MESSAGES_PER_SECOND = 7
# Activities that never reach the connector: nothing to pace or retry.
_LOCAL_TYPES = {ActivityTypes.invoke_response, ActivityTypes.trace}


class ConversationPacer:
    """At most `per_second` sends per conversation in any one-second window (this process)."""

    def __init__(self, per_second: int = MESSAGES_PER_SECOND, sleep: Sleep = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.per_second = per_second
        self._sleep = sleep
        self._clock = clock
        self._sent: dict[str, collections.deque[float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def wait(self, conversation_id: str) -> None:
        """Return when one more send to this conversation stays within the limit."""
        key, _ = split_conversation_id(conversation_id)  # a channel's threads share its limit
        async with self._locks.setdefault(key, asyncio.Lock()):
            sent = self._sent.setdefault(key, collections.deque(maxlen=self.per_second))
            if len(sent) == self.per_second:
                delay = sent[0] + 1.0 - self._clock()
                if delay > 0:
                    await self._sleep(delay)
            sent.append(self._clock())
        self._forget_idle()

    def _forget_idle(self) -> None:
        # Keeps the maps from growing with every conversation ever seen.
        if len(self._sent) < 10_000:
            return
        horizon = self._clock() - 1.0
        for key in [k for k, v in self._sent.items() if not v or v[-1] < horizon]:
            self._sent.pop(key, None)
            self._locks.pop(key, None)


def retry_delay(attempt: int, retry_after: str | None = None) -> float:
    """Teams' own advice when it gave one, else exponential backoff with full jitter."""
    advised = retry_after_seconds(retry_after)
    if advised is not None:
        return min(advised, MAX_DELAY_SECONDS)
    return random.uniform(0, min(MAX_DELAY_SECONDS, BASE_DELAY_SECONDS * 2**attempt))


async def with_retries[T](
    call: Callable[[], Awaitable[T]], *, sleep: Sleep = asyncio.sleep, attempts: int = MAX_ATTEMPTS
) -> T:
    """`call()`, again after a throttling or gateway answer, at most `attempts` times."""
    for attempt in range(attempts):
        try:
            return await call()
        except aiohttp.ClientResponseError as exc:
            if exc.status not in RETRYABLE_STATUSES or attempt == attempts - 1:
                raise
            header = exc.headers.get("Retry-After") if exc.headers else None
            delay = retry_delay(attempt, header)
            logger.info("Bot Connector answered %s; retrying in %.2fs", exc.status, delay)
        except aiohttp.ClientConnectorError:
            # Nothing reached Teams, so trying again cannot post twice.
            if attempt == attempts - 1:
                raise
            delay = retry_delay(attempt)
        await sleep(delay)
    raise AssertionError("unreachable")


class ConnectorPolicy:
    """Adapter middleware: paces and retries each send and update made during a turn."""

    def __init__(
        self, pacer: ConversationPacer | None = None, sleep: Sleep = asyncio.sleep
    ) -> None:
        self.pacer = pacer or ConversationPacer(sleep=sleep)
        self._sleep = sleep

    async def on_turn(
        self, context: TurnContext, logic: Callable[[TurnContext], Awaitable]
    ) -> None:
        context.on_send_activities(self._send)
        context.on_update_activity(self._update)
        await logic(context)

    async def _send(
        self,
        context: TurnContext,
        activities: list[Activity],
        send: Callable[[], Awaitable[list[ResourceResponse]]],
    ) -> list[ResourceResponse]:
        # Nothing reaches the connector from an expectReplies turn: replies go in the response.
        buffered = context.activity.delivery_mode == DeliveryModes.expect_replies
        if buffered or all(a.type in _LOCAL_TYPES for a in activities):
            return await send()
        return await self._paced(activities[0], send)

    async def _update(
        self,
        context: TurnContext,
        activity: Activity,
        update: Callable[[], Awaitable[ResourceResponse]],
    ) -> ResourceResponse:
        return await self._paced(activity, update)

    async def _paced[T](self, activity: Activity, call: Callable[[], Awaitable[T]]) -> T:
        conversation = activity.conversation.id if activity.conversation else ""

        async def attempt() -> T:
            await self.pacer.wait(conversation)
            return await call()

        return await with_retries(attempt, sleep=self._sleep)


# What talking to Teams may raise: connector HTTP errors, network and timeouts (requests, used
# by MSAL, raises OSError subclasses), and ValueError when no token could be had.
CONNECTOR_ERRORS = (aiohttp.ClientError, TimeoutError, OSError, ValueError)


def delivery_error(exc: BaseException) -> DeliveryError:
    """A connector or credential failure as deskmate's DeliveryError (no secrets, no bodies)."""
    if isinstance(exc, aiohttp.ClientResponseError):
        header = exc.headers.get("Retry-After") if exc.headers else None
        return DeliveryError(
            f"Teams refused the message (HTTP {exc.status})",
            retryable=exc.status in RETRYABLE_STATUSES or exc.status >= 500,
            retry_after=retry_after_seconds(header),
        )
    if isinstance(exc, aiohttp.ClientError | TimeoutError | OSError):
        return DeliveryError(f"Teams could not be reached: {type(exc).__name__}", retryable=True)
    # MSAL says ValueError when it gets no token: wrong app id, secret or tenant.
    return DeliveryError(
        "Teams credentials were refused: check the CONNECTIONS__SERVICE_CONNECTION__SETTINGS__ "
        "variables", retryable=False,
    )  # fmt: skip
