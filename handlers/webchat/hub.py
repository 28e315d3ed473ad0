"""The web chat's in-process pub/sub: each open page subscribes to one conversation (a channel
or a person's direct messages) and gets its posts, answer pieces and edits as they happen.

In-process on purpose: the page talks to the replica that serves it, and a page opened later
(or reconnecting) reads what it missed from the database. What other replicas make reaches
this hub through handlers/webchat/relay.py (PostgreSQL LISTEN/NOTIFY).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("deskmate.webchat")

# A page that falls this far behind is dropped; its EventSource reconnects and reloads.
QUEUE_SIZE = 256


@dataclass(frozen=True)
class Event:
    """Something to show: `name` is "post", "delta", "update" or "error".

    `audience` set to an email limits the event to that person's pages (an answer being
    streamed to the asker, a command's reply that only they should see)."""

    name: str
    data: dict[str, Any]
    audience: str | None = None


@dataclass(frozen=True)
class Room:
    """What a page subscribes to: a tenant's channel ("#sales") or a person's DM ("dm:email")."""

    tenant: str
    conversation: str


class Subscription:
    """One open page's queue; `None` from `get()` means the stream should end."""

    def __init__(self, room: Room) -> None:
        self.room = room
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(QUEUE_SIZE)

    async def get(self) -> Event | None:
        return await self._queue.get()

    def offer(self, event: Event | None) -> bool:
        """Queue an event without waiting; False when the page is too far behind."""
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            return False
        return True

    def end(self) -> None:
        """Make the next `get()` return None, dropping whatever was still queued."""
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)


class Hub:
    """Fan-out of events to the pages subscribed to a room."""

    def __init__(self) -> None:
        self._rooms: dict[Room, set[Subscription]] = {}
        self._closed = False

    @contextmanager
    def subscribe(self, room: Room) -> Iterator[Subscription]:
        """A subscription for the duration of the `with` block."""
        subscription = Subscription(room)
        if self._closed:
            subscription.end()
        else:
            self._rooms.setdefault(room, set()).add(subscription)
        try:
            yield subscription
        finally:
            self._drop(subscription)

    def publish(self, room: Room, event: Event) -> int:
        """Give the event to every page in the room; returns how many got it. Never waits: a
        page whose queue is full is ended (it reconnects and reloads) so one slow tab cannot
        hold up the others."""
        delivered = 0
        for subscription in list(self._rooms.get(room, ())):
            if subscription.offer(event):
                delivered += 1
            else:
                logger.info("web chat page in %s fell behind; ending its stream", room)
                self._drop(subscription)
                subscription.end()
        return delivered

    def subscribers(self, room: Room) -> int:
        return len(self._rooms.get(room, ()))

    def close(self) -> None:
        """End every stream (service shutdown) so no request waits on an idle page."""
        self._closed = True
        self.reset()

    def reset(self) -> None:
        """End every open stream: each page reconnects and reloads what it shows (when more
        was missed than is worth replaying event by event)."""
        for subscriptions in self._rooms.values():
            for subscription in subscriptions:
                subscription.end()
        self._rooms.clear()

    def _drop(self, subscription: Subscription) -> None:
        subscriptions = self._rooms.get(subscription.room)
        if subscriptions is not None:
            subscriptions.discard(subscription)
            if not subscriptions:
                del self._rooms[subscription.room]
