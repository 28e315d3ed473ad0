"""Helpers for the web chat tests (no tests here): the demo users, an SSE reader, sending."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from handlers.http import RUNTIME

ALEX = "alex.martin@northwind.example"  # sales
HANA = "hana.schmidt@northwind.example"  # hr
ELI = "eli.novak@northwind.example"  # engineering

Event = tuple[str, dict[str, Any]]
# How long a test waits for the next event before it fails.
WAIT_SECONDS = 20.0


class Events:
    """The events of one open stream, as a page would see them."""

    def __init__(self, response: ClientResponse) -> None:
        self.response = response
        self.seen: list[Event] = []

    async def next(self) -> Event:
        """The next event (comments and keep-alives skipped), within WAIT_SECONDS."""
        async with asyncio.timeout(WAIT_SECONDS):
            return await self._read()

    async def _read(self) -> Event:
        name, data = "", ""
        while True:
            line = await self.response.content.readline()
            if not line:
                raise AssertionError(f"the stream ended; seen so far: {self.seen}")
            text = line.decode().rstrip("\n")
            if text.startswith("event: "):
                name = text[7:]
            elif text.startswith("data: "):
                data = text[6:]
            elif text == "" and name:
                event = (name, json.loads(data))
                self.seen.append(event)
                return event

    async def wait(self, matches: Callable[[str, dict[str, Any]], bool]) -> dict[str, Any]:
        """Read until an event matches; returns its data."""
        while True:
            name, data = await self.next()
            if matches(name, data):
                return data

    async def post(self, *, reply_to: str | None = None, text: str | None = None) -> dict:
        """The next `post` event (replying to `reply_to`, or with that text, when given)."""
        return await self.wait(lambda name, data: name == "post"
                               and (reply_to is None or data["reply_to"] == reply_to)
                               and (text is None or data["text"] == text))  # fmt: skip

    def pieces(self, reply_to: str) -> list[str]:
        return [d["text"] for n, d in self.seen if n == "delta" and d["reply_to"] == reply_to]

    def deltas(self, reply_to: str) -> str:
        return "".join(self.pieces(reply_to))


@asynccontextmanager
async def listen(
    client: TestClient, email: str, *, channel: str | None = None
) -> AsyncIterator[Events]:
    """An open event stream for the person's DM or a channel, ready for events."""
    params = {"user": email} | ({"channel": channel} if channel else {})
    response = await client.get("/webchat/api/stream", params=params)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = Events(response)
    try:
        name, _ = await events.next()
        assert name == "ready"
        yield events
    finally:
        response.close()


async def ask(
    client: TestClient, email: str, text: str, *, channel: str | None = None
) -> dict[str, Any]:
    """Send a message as the person; returns the 202 body (`post`, `answering`)."""
    body = {"user": email, "text": text} | ({"channel": channel} if channel else {})
    response = await client.post("/webchat/api/messages", json=body)
    assert response.status == 202, await response.text()
    return await response.json()


async def table_counts(client: TestClient) -> dict[str, int]:
    """Rows that a message would leave behind."""
    async with client.app[RUNTIME].db.pool.acquire() as conn:
        return {
            table: await conn.fetchval(f"SELECT count(*) FROM {table}")
            for table in ("webchat_posts", "session_messages", "chat_sessions")
        }
