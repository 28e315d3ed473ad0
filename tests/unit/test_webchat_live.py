"""The web chat's in-process hub: delivery by room, a page that falls behind, closing; and the
reply statuses the page knows."""

from __future__ import annotations

import asyncio

import pytest

from bot.messages import ReplyStatus
from handlers.webchat import hub as hub_module
from handlers.webchat.hub import Event, Hub, Room


async def test_the_hub_delivers_by_room_and_drops_a_page_that_falls_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hub_module, "QUEUE_SIZE", 2)
    hub, sales, other = Hub(), Room("default", "#sales"), Room("default", "#hr-team")
    with hub.subscribe(sales) as slow, hub.subscribe(sales) as quick, hub.subscribe(other) as hr:
        assert hub.publish(sales, Event("post", {"n": 1})) == 2
        assert (await quick.get()) == Event("post", {"n": 1})
        hub.publish(sales, Event("post", {"n": 2}))
        assert hub.publish(sales, Event("post", {"n": 3})) == 1  # slow was full: dropped
        assert await slow.get() is None  # …and told to end (the page reconnects)
        assert hub.subscribers(sales) == 1 and hr.offer(Event("x", {}))
    assert hub.subscribers(sales) == 0


async def test_closing_the_hub_ends_every_stream() -> None:
    hub = Hub()
    with hub.subscribe(Room("default", "#sales")) as page:
        waiting = asyncio.ensure_future(page.get())
        hub.close()
        assert await asyncio.wait_for(waiting, 1) is None
    with hub.subscribe(Room("default", "#sales")) as late:
        assert await late.get() is None


def test_reply_status_values_are_what_the_page_knows() -> None:
    # render.js shows an "offline mode" badge for this value.
    assert ReplyStatus.OFFLINE.value == "offline"
