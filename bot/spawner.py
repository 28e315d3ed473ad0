"""The one spawner for background work: named, kept, failures reported, awaited on shutdown."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Coroutine
from typing import Any

from bot.errors import report_error

logger = logging.getLogger("deskmate.tasks")

# The lane of answers to people's messages (bounded by ANSWER_CONCURRENCY).
ANSWERS = "answers"


class Spawner:
    """Starts background tasks and waits for them (bounded) when the service stops."""

    def __init__(self, lanes: dict[str, int] | None = None) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        # A lane runs at most so many of its tasks at once; the others wait, not started.
        self._lanes = {name: asyncio.Semaphore(size) for name, size in (lanes or {}).items()}

    def spawn(
        self, coro: Coroutine[Any, Any, Any], *, name: str, lane: str | None = None
    ) -> asyncio.Task[Any]:
        """Run `coro` in the background; an exception goes to the one error path. With a
        `lane`, it starts only when the lane has room (the task exists and is awaited on
        shutdown meanwhile, but does nothing).

        The task runs in a copy of the caller's context: an answer spawned by a request keeps
        that request's id on its log lines (bot/logs.py), and its trace (when tracing is on)."""
        if self._closing:
            coro.close()
            raise RuntimeError("the service is stopping; no new background work")
        if lane is not None and lane in self._lanes:
            coro = self._in_lane(self._lanes[lane], coro)
        context = contextvars.copy_context()
        task = asyncio.get_running_loop().create_task(coro, name=name, context=context)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    @staticmethod
    async def _in_lane(room: asyncio.Semaphore, coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            async with room:
                return await coro
        finally:
            coro.close()  # never started when cancelled while waiting; a no-op otherwise

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        failure = None if task.cancelled() else task.exception()
        if failure is not None:
            report_error(failure, where=f"task:{task.get_name()}")

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def join(self) -> None:
        """Wait until every task started so far has finished (tests use this)."""
        while self._tasks:
            pending = [task for task in self._tasks if not task.done()]
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            else:
                # Finished, but their done callbacks (which forget them) have not run yet:
                # give the loop a turn. Gathering finished tasks returns without yielding, so
                # that loop spun forever.
                await asyncio.sleep(0)

    async def close(self, grace_seconds: float) -> None:
        """Refuse new work, give running tasks `grace_seconds`, then cancel the rest."""
        self._closing = True
        if not self._tasks:
            return
        _, pending = await asyncio.wait(list(self._tasks), timeout=grace_seconds)
        for task in pending:
            logger.warning("cancelling %s: still running at shutdown", task.get_name())
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
