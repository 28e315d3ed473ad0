"""The page's live feed: Server-Sent Events for one conversation (a channel or the person's DM).

SSE rather than WebSocket: the traffic is one-way (the page sends with plain POSTs), the
browser's EventSource reconnects by itself, and it passes any proxy that passes HTTP.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from handlers.webchat.api import WEBCHAT
from handlers.webchat.hub import Event, Room, Subscription
from handlers.webchat.views import dm_conversation

# A comment line this often keeps proxies from closing an idle stream, and finds closed tabs.
KEEPALIVE_SECONDS = 15.0
# How soon a dropped page tries again (the SSE `retry` field, in milliseconds).
RECONNECT_MS = 2000

SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx: do not buffer the stream
}


def encode(name: str, data: dict[str, Any]) -> bytes:
    """One SSE event. JSON never contains a raw newline, so one `data:` line is enough."""
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def stream(request: web.Request) -> web.StreamResponse:
    """Events of `?channel=` (or of the DM of `?user=`) until the page goes away: first `ready`
    (the page then loads the history), then `post`, `delta`, `update` and `error`."""
    chat = request.app[WEBCHAT]
    user = await chat.person(request.query.get("user", ""))
    channel = request.query.get("channel")
    conversation = await chat.channel(channel) if channel else dm_conversation(user.email)
    response = web.StreamResponse(headers=SSE_HEADERS)
    await response.prepare(request)
    with chat.hub.subscribe(Room(chat.tenant, conversation)) as subscription:
        try:
            await response.write(f"retry: {RECONNECT_MS}\n".encode())
            await response.write(encode("ready", {"conversation": conversation}))
            await _relay(subscription, response, user.email)
        except ConnectionResetError:
            pass  # the tab closed
    return response


async def _relay(subscription: Subscription, response: web.StreamResponse, email: str) -> None:
    while True:
        try:
            event: Event | None = await asyncio.wait_for(subscription.get(), KEEPALIVE_SECONDS)
        except TimeoutError:
            await response.write(b": keep-alive\n\n")
            continue
        if event is None:
            return
        if event.audience is None or event.audience == email:
            await response.write(encode(event.name, event.data))
