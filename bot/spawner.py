"""The one spawner for background work: named, kept, failures reported, awaited on shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from bot.errors import report_error

logger = logging.getLogger("deskmate.tasks")


class Spawner:
    """Starts background tasks and waits for them (bounded) when the service stops."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Run `coro` in the background; an exception goes to the one error path."""
        if self._closing:
            coro.close()
            raise RuntimeError("the service is stopping; no new background work")
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

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
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

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
