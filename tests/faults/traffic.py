"""People writing to deskmate through Slack, and Slack delivering it as Slack does: signed
event requests spread over the replicas, an ack expected within 3 seconds, anything else (a
non-2xx, a timeout, a refused connection) retried up to 3 times with backoff, and now and then
an event delivered twice because its ack was slow."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.support.slack_requests import BOT, TEAM, envelope, sign

ACK_TIMEOUT_SECONDS = 3.0  # Slack's: a later ack counts as a failure and is retried
# Slack retries nearly at once, after a minute and after five; compressed here so the last
# retry of an event refused during the database restart lands after it.
RETRY_BACKOFF_SECONDS = (1.0, 4.0, 12.0)
PEOPLE = [f"U-P{number:02d}" for number in range(1, 21)]
CHANNELS = ["C-SALES", "C-SUPPORT", "C-OPS", "C-HR"]
QUESTIONS = [
    "where is the travel policy?", "how many days of leave do I have?",
    "who approves expenses?", "when is the office closed?", "what is our VPN?",
]  # fmt: skip


@dataclass
class Message:
    """One person's message, and what happened to its deliveries."""

    number: int
    kind: str  # dm | mention
    event: dict[str, Any]
    twin: dict[str, Any] | None  # the `message` event Slack sends beside an `app_mention`
    delivered_twice: bool
    outcomes: list[str] = field(default_factory=list)  # "200", "500", "timeout", "refused"…
    acked_by: str | None = None  # the replica URL that acked it first

    @property
    def thread(self) -> str:
        """channel:ts, how answers are found in the fake Slack."""
        return f"{self.event['channel']}:{self.event['ts']}"

    @property
    def event_key(self) -> str:
        return f"{TEAM}:{self.thread}"

    @property
    def acked(self) -> bool:
        return self.acked_by is not None


def make_messages(
    count: int, rng: random.Random, *, seconds: float, twice: float = 0.1
) -> list[Message]:
    """`count` messages from 20 people, to be sent over `seconds`: about 60 % direct messages,
    the rest mentions. Each `ts` is no later than its sending, as Slack's (the time a message
    was written) is never later than the answers to it: a resumed answer looks for an earlier
    attempt's in the thread from its question's `ts` on."""
    start, gap = time.time() - 1, seconds / max(1, count)
    messages = []
    for number in range(count):
        person, text = rng.choice(PEOPLE), f"{rng.choice(QUESTIONS)} (#{number})"
        ts = f"{int(start + number * gap)}.{number:06d}"  # the fraction keeps them unique
        if rng.random() < 0.6:
            event = {"type": "message", "channel_type": "im", "channel": f"D{person}",
                     "user": person, "text": text, "ts": ts, "team": TEAM}  # fmt: skip
            twin = None
            kind = "dm"
        else:
            channel = rng.choice(CHANNELS)
            said = f"<@{BOT}> {text}"
            event = {"type": "app_mention", "channel": channel, "user": person,
                     "text": said, "ts": ts, "team": TEAM}  # fmt: skip
            twin = {"type": "message", "channel_type": "channel", "channel": channel,
                    "user": person, "text": said, "ts": ts, "team": TEAM}  # fmt: skip
            kind = "mention"
        messages.append(Message(number, kind, event, twin, rng.random() < twice))
    return messages


class SlackDeliveries:
    """Slack's side: delivers each message to one of the replicas' URLs, with its retries."""

    def __init__(self, urls: Callable[[], list[str]], rng: random.Random) -> None:
        self.urls = urls
        self.rng = rng
        self.requests = 0
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SlackDeliveries:
        timeout = aiohttp.ClientTimeout(total=ACK_TIMEOUT_SECONDS)
        self._session = aiohttp.ClientSession(timeout=timeout,
                                              connector=aiohttp.TCPConnector(limit=0))  # fmt: skip
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def send_all(self, messages: list[Message], seconds: float) -> None:
        """Deliver the messages evenly over `seconds`, each with its retries (and twin)."""
        gap = seconds / max(1, len(messages))
        tasks = []
        for message in messages:
            tasks.append(asyncio.create_task(self.deliver(message)))
            await asyncio.sleep(gap)
        await asyncio.gather(*tasks)

    async def deliver(self, message: Message) -> None:
        event_id = f"Ev{message.number:06d}"
        jobs = [self._with_retries(message, message.event, event_id, record=True)]
        if message.twin is not None:
            jobs.append(self._with_retries(message, message.twin, f"{event_id}-twin"))
        if message.delivered_twice:
            jobs.append(self._slow_ack_retry(message, event_id))
        await asyncio.gather(*jobs)

    async def _slow_ack_retry(self, message: Message, event_id: str) -> None:
        """Slack saw the first ack too late and sends the event again."""
        await asyncio.sleep(self.rng.uniform(0.1, 2.0))
        await self._with_retries(message, message.event, event_id, record=True, first_retry=1)

    async def _with_retries(self, message: Message, event: dict[str, Any], event_id: str, *,
                            record: bool = False, first_retry: int = 0) -> None:  # fmt: skip
        body = json.dumps(envelope(event, event_id))
        for retry in range(first_retry, len(RETRY_BACKOFF_SECONDS) + 1):
            if retry > first_retry:
                await asyncio.sleep(RETRY_BACKOFF_SECONDS[retry - 1])
            url = self.rng.choice(self.urls())
            outcome = await self._post(url, body, retry)
            if record:
                message.outcomes.append(outcome)
            if outcome.startswith("2"):
                if record and message.acked_by is None:
                    message.acked_by = url
                return

    async def _post(self, url: str, body: str, retry: int) -> str:
        assert self._session is not None
        headers = {"Content-Type": "application/json", **sign(body)}
        if retry:
            headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        self.requests += 1
        try:
            async with self._session.post(f"{url}/slack/events", data=body,
                                          headers=headers) as response:  # fmt: skip
                await response.read()
                return str(response.status)
        except TimeoutError:
            return "timeout"
        except aiohttp.ClientConnectionError:
            return "refused"
