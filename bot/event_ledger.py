"""Once-only handling of platform events, and what the edges may ask about past conversations.

An edge claims an event with what it needs to answer it (`payload`) before it acks, and
registers how to answer a payload again (`on_resume`). From the claim until `finish`, the
process holds the claim: one renewer keeps the leases of every claim it holds fresh (queued
answers included: a flood may keep them waiting longer than a lease). If the replica dies, its
leases run out and the sweeper of any replica picks the events up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from bot import logs, metrics, tenancy
from bot.spawner import ANSWERS
from bot.text import storable_json
from storage import events, sessions
from storage.database import Database

logger = logging.getLogger("deskmate.events")

# How a platform answers an accepted event again from its payload, and which attempt this is
# (above 1, an earlier attempt may have shown part or all of its answer).
Resume = Callable[[dict[str, Any], int], Coroutine[Any, Any, None]]
Spawn = Callable[..., Any]

# An answer renews its claim this often, and at least four times per lease (EVENT_LEASE_SECONDS).
RENEW_EVERY_SECONDS = 30.0
# After this many attempts an event is left failed (the log says so) rather than retried again.
MAX_ATTEMPTS = 4
# A failed attempt (the platform refused the reply, say) is retried after this long, or after
# half a lease when leases are shorter.
RETRY_FAILED_AFTER_SECONDS = 60.0
SWEEP_BATCH = 20
# At most this many claims are written in one statement.
CLAIM_BATCH = 500
# Recording an answer's end is retried after these pauses (doubling) while the database is away.
FINISH_FIRST_PAUSE_SECONDS = 0.2
FINISH_LONGEST_PAUSE_SECONDS = 2.0


class EventLedger:
    """Claims platform events so retries and twins produce one answer (processed_events)."""

    def __init__(self, db: Database, *, lease_seconds: float = events.STALE_AFTER_SECONDS) -> None:
        self.db = db
        # A claim not renewed for this long is taken to belong to a dead process.
        self.lease_seconds = lease_seconds
        self._resumers: dict[str, Resume] = {}
        self._held: set[tuple[str, str]] = set()
        self._renewer: asyncio.Task[None] | None = None
        self._claims = ClaimBatches(db, lease_seconds)

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
        claimed = await self._claims.claim(events.NewClaim(platform, event_id, tenant_id, stored))
        if claimed:
            self._hold(platform, event_id)
        outcome = "new" if claimed else "duplicate"
        metrics.EVENTS_ACKED.labels(platform=platform, outcome=outcome).inc()
        return claimed

    async def finish(self, platform: str, event_id: str, *, ok: bool) -> None:
        """Record how the answer ended. An end left unrecorded is answered again once the lease
        runs out, although the person has seen the answer: so while the database cannot be
        reached (it restarts, say), this tries again, for up to a lease."""
        deadline = time.monotonic() + self.lease_seconds
        pause = FINISH_FIRST_PAUSE_SECONDS
        while True:
            try:
                async with self.db.pool.acquire() as conn:
                    await events.finish(conn, platform, event_id, ok=ok)
                self._held.discard((platform, event_id))
                return
            except Exception as exc:
                if time.monotonic() + pause > deadline:
                    self._held.discard((platform, event_id))  # the sweeper's, after the lease
                    raise
                logger.warning("could not record the end of %s %s yet (%s): trying again",
                               platform, event_id, exc)  # fmt: skip
            await asyncio.sleep(pause)
            # Short pauses: once the database is back, the end must be recorded before
            # another replica's sweeper finds the lease run out.
            pause = min(pause * 2, FINISH_LONGEST_PAUSE_SECONDS, self.lease_seconds / 8)

    def _hold(self, platform: str, event_id: str) -> None:
        self._held.add((platform, event_id))
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(
                self._renew_held(), name="event-leases"
            )

    async def _renew_held(self) -> None:
        """Every few seconds, push forward the leases of all claims this process holds, in one
        statement; stop when none are left (the next claim starts this again)."""
        while self._held:
            await asyncio.sleep(min(RENEW_EVERY_SECONDS, self.lease_seconds / 4))
            held = sorted(self._held)
            try:
                async with self.db.pool.acquire() as conn:
                    await events.renew(conn, held)
            except Exception as exc:  # a missed renewal only risks a second attempt
                logger.warning("could not renew %d claims: %s", len(held), exc)

    @property
    def held(self) -> int:
        """How many claims this process holds (accepted, not finished)."""
        return len(self._held)

    async def close(self) -> None:
        """Stop renewing (the process is stopping: what it still holds will be resumed)."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None

    async def sweep(self, spawn: Spawn) -> int:
        """Resume accepted events nobody finished; returns how many were started again."""
        if not self._resumers:
            return 0
        async with self.db.pool.acquire() as conn:
            taken = await events.take_abandoned(
                conn, platforms=sorted(self._resumers), max_attempts=MAX_ATTEMPTS,
                retry_failed_after=min(RETRY_FAILED_AFTER_SECONDS, self.lease_seconds / 2),
                limit=SWEEP_BATCH, stale_after=self.lease_seconds,
            )  # fmt: skip
        for event in taken:
            self._hold(event.platform, event.event_id)
            # A resumed answer's log lines get an id of their own, as a request's would.
            with logs.request_scope(logs.new_request_id()):
                logger.warning(
                    "resuming %s event %s (attempt %d): its earlier attempt did not finish",
                    event.platform, event.event_id, event.attempts,
                )  # fmt: skip
                resume = self._resumers[event.platform]
                spawn(resume(event.payload, event.attempts),
                      name=f"resume:{event.platform}:{event.event_id}", lane=ANSWERS)  # fmt: skip
            metrics.EVENTS_RESUMED.labels(platform=event.platform).inc()
        return len(taken)

    async def conversation_seen(self, platform: str, conversation_key: str, tenant: str) -> bool:
        """Whether deskmate has already talked in this conversation or thread."""
        tenant_id = await tenancy.tenant_id(self.db, tenant)
        async with self.db.pool.acquire() as conn:
            return await sessions.conversation_seen(conn, tenant_id, platform, conversation_key)


class ClaimBatches:
    """Claims that arrive together are written together: one statement and one commit for all
    the claims that came in while the previous batch was being written (group commit).

    Every ack waits for its claim to be durable. One commit per claim made a flood of a few
    hundred senders queue on the connections reserved for acks, each commit a WAL flush; in
    batches, the acks of a flood cost a few statements. A lone claim is written at once.
    """

    def __init__(self, db: Database, lease_seconds: float) -> None:
        self.db = db
        self.lease_seconds = lease_seconds
        self._waiting: list[tuple[events.NewClaim, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def claim(self, claim: events.NewClaim) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((claim, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write(), name="claims")
        return await future

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:CLAIM_BATCH], self._waiting[CLAIM_BATCH:]
            try:
                async with self.db.ack_pool.acquire() as conn:
                    owned = await events.claim_many(
                        conn, [claim for claim, _ in batch], stale_after=self.lease_seconds
                    )
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for claim, future in batch:
                key = (claim.platform, claim.event_id)
                # A key twice in one batch (a retry racing its original) is owned once.
                if not future.done():
                    future.set_result(key in owned)
                owned.discard(key)
