"""Live updates across replicas: what another replica posts or answers reaches the pages
connected to this one.

Each replica shows what it makes to its own pages at once (handlers/webchat/hub.py) and sends a
note with ids only (storage/notify.py: NOTIFY, in the transaction that stores a post). Every
replica keeps one listening connection of its own, outside the pool; a note from another
replica is read back by id and published here, in the order the notes were committed.

What crosses: channel posts and their edits, answers only the asker sees (direct messages,
commands' replies) and failures. A direct message's question crosses with its answer (it is
stored only once answering starts); the asker's own page shows it when sending. The pieces
of an answer being written do not: they are never stored, and the replica that answers
streams them to the pages it serves. A page on another replica (the load balancer may send
the question and the event stream to different replicas) shows the finished answer when it
is stored.

When the listening connection drops (PostgreSQL restarted, the session was terminated), it is
opened again with backoff, and what was stored meanwhile is read back by id and shown, once.
Edits and failures made while it was away show on the page's next reload.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from aiohttp import web

from bot.errors import NotFound
from bot.local_chat import LocalChat
from handlers.webchat.hub import Event, Hub, Room
from handlers.webchat.views import (
    apology,
    dm_conversation,
    post_view,
    private_answer_view,
    question_view,
)
from storage import notify
from storage.errors import StorageError
from storage.notify import Listening, Note
from storage.webchat import Post, PrivateAnswer

logger = logging.getLogger("deskmate.webchat")

# Reconnecting: the first wait after a drop, doubled after each failed attempt up to the cap.
RECONNECT_FIRST_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 30.0
# A silent connection is asked whether it is still there this often (a dead network need not
# close the socket), and given this long to answer.
HEARTBEAT_SECONDS = 30.0
HEARTBEAT_TIMEOUT_SECONDS = 10.0
# How long the app's start waits for the first LISTEN; after that it keeps trying in the back.
FIRST_LISTEN_SECONDS = 5.0
# Ids recently shown, so nothing is shown twice when a catch-up reads what was also heard.
SEEN_SIZE = 2048
CATCH_UP_PAGE = 500
# More missed than this and the pages reload instead of being replayed event by event.
CATCH_UP_LIMIT = 1000

ListenUrl = Callable[[], Awaitable[str | None]]


class Seen:
    """The ids of one kind of row this replica has shown (made here or heard of).

    A catch-up reads the ids above `after` and replays those not in the window: ids are not
    committed in order, so the window, not the highest id, tells what was shown. `after` only
    moves past ids that left the window (or that predate listening), which bounds the reads."""

    def __init__(self, size: int = SEEN_SIZE) -> None:
        self.after: int | None = None
        self._order: deque[int] = deque()
        self._ids: set[int] = set()
        self._size = size

    def __contains__(self, row_id: int) -> bool:
        return row_id in self._ids

    def add(self, row_id: int) -> bool:
        """Remember `row_id`; False when it was shown already."""
        if row_id in self:
            return False
        self._order.append(row_id)
        self._ids.add(row_id)
        if len(self._order) > self._size:
            oldest = self._order.popleft()
            self._ids.discard(oldest)
            self.after = max(self.after or 0, oldest)
        return True

    def start_after(self, row_id: int) -> None:
        """Begin (or begin again) after `row_id`: what is older is not replayed."""
        self.after = max(self.after or 0, row_id)


class Relay:
    """The web chat's link to the other replicas: notes out, one listener in."""

    def __init__(self, core: LocalChat, hub: Hub, listen_url: ListenUrl) -> None:
        self.core = core
        self.hub = hub
        self.origin = secrets.token_hex(6)  # this replica, in the notes it sends
        self.posts = Seen()
        self.answers = Seen()
        self.listening = asyncio.Event()
        self._listen_url = listen_url
        self._listener: Listening | None = None
        self._heard: asyncio.Queue[Note | None] = asyncio.Queue()  # None: catch up first
        self._behind = False
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def backend_pid(self) -> int | None:
        """The server process of the listening session, while there is one."""
        return self._listener.backend_pid if self._listener is not None else None

    def note(self, kind: str, tenant_id: int, **ids: Any) -> Note:
        return Note(kind=kind, tenant=tenant_id, origin=self.origin, **ids)

    async def announce(self, note: Note) -> None:
        """Send a note outside any transaction; a failure costs other replicas' pages a live
        update (they see it on reload), never the answer itself."""
        try:
            await self.core.announce(note)
        except Exception as exc:
            logger.warning("could not tell other replicas about a web chat %s: %s",
                           note.kind, type(exc).__name__)  # fmt: skip

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self, _: web.Application) -> None:
        url = await self._listen_url()
        if url is None:
            return
        self._tasks = [
            asyncio.create_task(self._keep_listening(url), name="webchat-listener"),
            asyncio.create_task(self._show_heard(), name="webchat-relay"),
        ]
        with suppress(TimeoutError):
            await asyncio.wait_for(self.listening.wait(), FIRST_LISTEN_SECONDS)

    async def stop(self, _: web.Application) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _keep_listening(self, url: str) -> None:
        delay = RECONNECT_FIRST_SECONDS
        while True:
            try:
                listener = await notify.listen(url, self._heard.put_nowait)
            except Exception as exc:  # down, restarting, refusing us: try again, more slowly
                reason = str(exc) if isinstance(exc, StorageError) else type(exc).__name__
                logger.warning("web chat live updates from other replicas are paused (%s); "
                               "trying again in %.1f s", reason, delay)  # fmt: skip
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_SECONDS)
                continue
            # Queued before any note heard on this connection: what was missed comes first.
            self._heard.put_nowait(None)
            self._listener, delay = listener, RECONNECT_FIRST_SECONDS
            self.listening.set()
            try:
                await _until_lost(listener)
            finally:
                self.listening.clear()
                self._listener = None
                await listener.close()
            logger.warning("web chat listener lost its connection; listening again")
            await asyncio.sleep(delay)

    # --- showing what other replicas made ----------------------------------------------------

    async def _show_heard(self) -> None:
        retry = RECONNECT_FIRST_SECONDS
        while True:
            note = await self._next(retry)
            try:
                if note is None or self._behind:
                    await self._catch_up()
                if note is not None:
                    await self._show(note)
            except Exception as exc:  # the database is away: read it all back when it returns
                if not self._behind:
                    logger.warning("web chat relay fell behind (%s); catching up when the "
                                   "database answers", type(exc).__name__)  # fmt: skip
                self._behind = True
                retry = min(retry * 2, RECONNECT_MAX_SECONDS)
            else:
                retry = RECONNECT_FIRST_SECONDS

    async def _next(self, retry: float) -> Note | None:
        if not self._behind:
            return await self._heard.get()
        try:
            return await asyncio.wait_for(self._heard.get(), retry)
        except TimeoutError:
            return None  # time to try catching up again

    async def _show(self, note: Note) -> None:
        if note.origin == self.origin or note.tenant != await self.core.tenant_id():
            return
        if note.kind in ("post", "update") and note.post is not None:
            with suppress(NotFound):  # deleted since
                self._show_post(await self.core.post(note.post), note.kind)
        elif note.kind == "answer" and note.message is not None:
            answer = await self.core.private_answer(note.message, note.reply_to)
            if answer is not None:
                self._show_answer(answer, note.reply_to)
        elif note.kind == "error" and note.user is not None and note.reference is not None:
            person = await self.core.person_by_id(note.user)
            if person is not None:
                room = Room(self.core.tenant, note.channel or dm_conversation(person.email))
                failure = {"reply_to": note.reply_to, "text": apology(note.reference)}
                self.hub.publish(room, Event("error", failure, audience=person.email))

    def _show_post(self, post: Post, kind: str = "post") -> None:
        if kind == "post" and not self.posts.add(post.id):
            return
        self.hub.publish(Room(self.core.tenant, post.channel), Event(kind, post_view(post)))

    def _show_answer(self, answer: PrivateAnswer, reply_to: str | None) -> None:
        if not self.answers.add(answer.id):
            return
        room = Room(self.core.tenant, answer.conversation)
        ref = reply_to or answer.question_ref
        if answer.conversation.startswith("dm:") and ref and answer.question is not None:
            # The asker's page showed its question when it sent it (same id: no double); their
            # other pages learn of it here, just before its answer.
            asked = (answer.asked_at or answer.created_at).isoformat()
            question = question_view(ref, answer.display_name, answer.email, answer.question, asked)
            self.hub.publish(room, Event("post", question))
        view = private_answer_view(answer, reply_to=ref)
        self.hub.publish(room, Event("post", view, audience=answer.email))

    async def _catch_up(self) -> None:
        """Show what was stored while nobody listened; on the first connection, start here."""
        if self.posts.after is None or self.answers.after is None:
            newest_post, newest_message = await self.core.newest_ids()
            self.posts.start_after(newest_post)
            self.answers.start_after(newest_message)
        else:
            posts = await self._missed(self.posts, self.core.posts_after)
            answers = await self._missed(self.answers, self.core.private_answers_after)
            if posts is None or answers is None:
                logger.warning("web chat pages missed too much while not listening; reloading")
                newest_post, newest_message = await self.core.newest_ids()
                self.posts.start_after(newest_post)
                self.answers.start_after(newest_message)
                self.hub.reset()
            else:
                for post in posts:
                    self._show_post(post)
                for answer in answers:
                    self._show_answer(answer, None)
        self._behind = False

    async def _missed[Row: (Post, PrivateAnswer)](
        self, seen: Seen, read: Callable[[int, int], Awaitable[list[Row]]]
    ) -> list[Row] | None:
        """The rows above `seen.after` not shown yet; None when there are too many."""
        missed: list[Row] = []
        cursor = seen.after or 0
        while True:
            page = await read(cursor, CATCH_UP_PAGE)
            missed += [row for row in page if row.id not in seen]
            if len(missed) > CATCH_UP_LIMIT:
                return None
            if len(page) < CATCH_UP_PAGE:
                return missed
            cursor = page[-1].id


async def _until_lost(listener: Listening) -> None:
    while True:
        try:
            await asyncio.wait_for(listener.wait_lost(), HEARTBEAT_SECONDS)
            return
        except TimeoutError:
            if not await listener.alive(HEARTBEAT_TIMEOUT_SECONDS):
                return
