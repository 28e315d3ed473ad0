"""The web chat's in-process hub: delivery by room, a page that falls behind, closing; the notes
replicas send each other and what a replica remembers having shown; and the reply statuses the
page knows."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot.messages import ReplyStatus
from handlers.webchat import hub as hub_module
from handlers.webchat.hub import Event, Hub, Room
from handlers.webchat.relay import Seen
from storage.notify import Note, decode


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


async def test_resetting_the_hub_ends_streams_but_new_pages_still_subscribe() -> None:
    hub = Hub()
    with hub.subscribe(Room("default", "#sales")) as page:
        hub.reset()
        assert await asyncio.wait_for(page.get(), 1) is None  # the page reconnects and reloads
    with hub.subscribe(Room("default", "#sales")) as reloaded:
        assert hub.publish(Room("default", "#sales"), Event("post", {})) == 1
        assert await reloaded.get() == Event("post", {})


def test_a_note_carries_ids_only_and_reads_back() -> None:
    note = Note(kind="answer", tenant=1, origin="a1b2", message=42, user=7, reply_to="q-3f")
    payload = note.encode()
    assert decode(payload) == note
    assert set(json.loads(payload)) == {"kind", "tenant", "origin", "message", "user", "reply_to"}


@pytest.mark.parametrize(
    "payload",
    ["", "not json", "[]", '{"kind": "post"}', '{"kind": "launch", "tenant": 1, "origin": "x"}',
     '{"kind": "post", "tenant": "1", "origin": "x"}',
     '{"kind": "post", "tenant": 1, "origin": "x", "post": true}',
     '{"kind": "post", "tenant": 1, "origin": "x", "content": "hi"}'],
)  # fmt: skip
def test_anything_else_on_the_channel_is_ignored(payload: str) -> None:
    assert decode(payload) is None


def test_seen_tells_what_was_shown_and_bounds_what_a_catch_up_reads() -> None:
    seen = Seen(size=3)
    seen.start_after(10)
    assert seen.add(12) and seen.add(11)  # committed out of order: both new
    assert not seen.add(12) and 12 in seen and 13 not in seen
    assert seen.add(13) and seen.add(14)  # 12 leaves the window…
    assert seen.after == 12  # …and a catch-up need not read it again
    seen.start_after(5)
    assert seen.after == 12  # never backwards


def test_reply_status_values_are_what_the_page_knows() -> None:
    # render.js shows an "offline mode" badge for this value.
    assert ReplyStatus.OFFLINE.value == "offline"
