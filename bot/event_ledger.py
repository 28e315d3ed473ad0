"""Once-only handling of platform events, and what the edges may ask about past conversations.

An edge claims an event with what it needs to answer it (`payload`) before it acks, answers
while `holding` the claim, and registers how to answer a payload again (`on_resume`): if the
replica dies mid-answer, the sweeper of any replica picks the event up once its lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from bot import tenancy
from bot.text import storable_json
from storage import events, sessions
from storage.database import Database

logger = logging.getLogger("deskmate.events")

# How a platform answers an accepted event again from its payload.
Resume = Callable[[dict[str, Any]], Coroutine[Any, Any, None]]
Spawn = Callable[..., Any]

# An answer renews its claim this often, well inside the lease (events.STALE_AFTER_SECONDS).
RENEW_EVERY_SECONDS = 30.0
# After this many attempts an event is left failed (the log says so) rather than retried again.
MAX_ATTEMPTS = 4
# A failed attempt (the platform refused the reply, say) is retried after this long.
RETRY_FAILED_AFTER_SECONDS = 60.0
SWEEP_BATCH = 20


class EventLedger:
    """Claims platform events so retries and twins produce one answer (processed_events)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._resumers: dict[str, Resume] = {}

    def on_resume(self, platform: str, resume: Resume) -> None:
        self._resumers[platform] = resume

    async def claim(
        self,
        platform: str,
        event_id: str,
        tenant: str = "default",
        *,
        payload: dict[str, Any] | None = None,
    ) -> bool:
        """True when this delivery should be processed; False for a duplicate. Raises when the
        database cannot record it, so the edge answers non-2xx and the platform retries."""
        tenant_id = await tenancy.tenant_id(self.db, tenant)
        stored = storable_json(payload) if payload is not None else None
        async with self.db.ack_pool.acquire() as conn:
            return await events.claim(conn, platform, event_id, tenant_id, payload=stored)

    async def finish(self, platform: str, event_id: str, *, ok: bool) -> None:
        async with self.db.pool.acquire() as conn:
            await events.finish(conn, platform, event_id, ok=ok)

    @contextlib.asynccontextmanager
    async def holding(self, platform: str, event_id: str) -> AsyncIterator[None]:
        """Keep the claim's lease fresh while the body runs (answers may outlast the lease)."""
        renewer = asyncio.create_task(self._renew(platform, event_id), name="event-lease")
        try:
            yield
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _renew(self, platform: str, event_id: str) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY_SECONDS)
            try:
                async with self.db.pool.acquire() as conn:
                    await events.renew(conn, platform, event_id)
            except Exception as exc:  # a missed renewal only risks a second attempt
                logger.warning("could not renew the claim on %s %s: %s", platform, event_id, exc)

    async def sweep(self, spawn: Spawn) -> int:
        """Resume accepted events nobody finished; returns how many were started again."""
        if not self._resumers:
            return 0
        async with self.db.pool.acquire() as conn:
            taken = await events.take_abandoned(
                conn, platforms=sorted(self._resumers), max_attempts=MAX_ATTEMPTS,
                retry_failed_after=RETRY_FAILED_AFTER_SECONDS, limit=SWEEP_BATCH,
            )  # fmt: skip
        for event in taken:
            logger.warning(
                "resuming %s event %s (attempt %d): its earlier attempt did not finish",
                event.platform, event.event_id, event.attempts,
            )  # fmt: skip
            resume = self._resumers[event.platform]
            spawn(resume(event.payload), name=f"resume:{event.platform}:{event.event_id}")
        return len(taken)

    async def conversation_seen(self, platform: str, conversation_key: str, tenant: str) -> bool:
        """Whether deskmate has already talked in this conversation or thread."""
        tenant_id = await tenancy.tenant_id(self.db, tenant)
        async with self.db.pool.acquire() as conn:
            return await sessions.conversation_seen(conn, tenant_id, platform, conversation_key)
