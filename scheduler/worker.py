"""The delivery worker: claims due runs and posts them through `runtime.senders`, at most
`scheduler_concurrency` at a time, until none is due; the tick wakes it.

Exactly once per slot: a claim is fenced (see storage/jobs.py); a retried run first asks the
sender whether an earlier attempt already posted it (the idempotency key is schedule + slot);
the platform's message id is recorded in the same statement that marks the run sent.

At the platform's pace across replicas: a run is claimed only when its channel may take a post,
and the claim reserves the channel (storage/schedules.py); a run whose post could not leave at
once (a prompt answered first) reserves it again before posting.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import time
from collections import Counter
from typing import TYPE_CHECKING

from bot.cron import backoff_seconds, idempotency_key
from bot.directory import PLATFORMS
from bot.errors import NotFound, report_error
from bot.metrics import SCHEDULED_RUNS, SCHEDULER_CLAIMS, observe_delivery_lag
from bot.outbound import Delivery, DeliveryError, Outbound, Sender, Target
from scheduler import content
from storage import jobs, schedules
from storage.jobs import Claim
from storage.schedules import POST_WINDOW_SECONDS, PacedClaim

if TYPE_CHECKING:
    from bot.runtime import Runtime

logger = logging.getLogger("deskmate.scheduler")

DRAIN_SECONDS = 60.0
# A due run for a platform this process cannot post to is left to replicas that can; one still
# waiting after this long is worth a warning (once), as no replica may have that platform.
WAITING_WARN_SECONDS = 60.0
WAITING_LOOKED_AT = 100
# A drain with nothing left to claim waits this long at most for a run held back by its
# channel's pace (or a short backoff) rather than ending; runs due later wait for the next tick.
PACE_WAIT_MAX_SECONDS = 2.0
PACE_WAIT_MIN_SECONDS = 0.02


class DeliveryWorker:
    """Delivers claimed runs for one replica; `drain()` works until nothing is due."""

    def __init__(self, runtime: Runtime, replica: str) -> None:
        settings = runtime.settings
        self.runtime = runtime
        self.replica = replica
        self.concurrency = settings.scheduler_concurrency
        self.lease = settings.scheduler_lease_seconds
        self.max_attempts = settings.scheduler_max_attempts
        self.retry_base = settings.scheduler_retry_base_seconds
        self.retry_max = settings.scheduler_retry_max_seconds
        self.pacing = {
            "slack": settings.pacing_slack_seconds,
            "teams": settings.pacing_teams_seconds,
            "web": settings.pacing_web_seconds,
        }
        self.stopping = False
        self._warned: set[int] = set()  # runs already reported as waiting for their platform

    async def drain(self, budget_seconds: float = DRAIN_SECONDS) -> Counter[str]:
        """Claim and deliver until no run is due (or, under constant load, until the budget is
        spent, so each drain is recorded in job_runs); returns the outcomes (sent, retry, …).
        Runs held back only by their channel's pace are waited for."""
        outcomes: Counter[str] = Counter()
        in_flight: set[asyncio.Task[str]] = set()
        deadline = time.monotonic() + budget_seconds
        try:
            while True:
                claiming = not self.stopping and time.monotonic() < deadline
                free = self.concurrency - len(in_flight) if claiming else 0
                for paced in await self._claim(free):
                    name = f"scheduled-run:{paced.claim.id}"
                    delivery = self.deliver(paced.claim, paced.paced_until)
                    in_flight.add(asyncio.create_task(delivery, name=name))
                if not in_flight:
                    if claiming and await self._wait_for_pace(deadline):
                        continue
                    return outcomes
                done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    outcomes[self._outcome(task)] += 1
        except asyncio.CancelledError:
            # Shutdown ran out of patience: stop what is in flight (each releases its claim
            # when it had not reached the platform yet) and wait for that to happen.
            for task in in_flight:
                task.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
            raise

    def _pacing(self) -> dict[str, float]:
        # Only platforms this process can post to: a CLI process or a replica without Teams
        # credentials leaves those runs to replicas that have them.
        return {p: self.pacing.get(p, 0.0) for p in self.runtime.senders.platforms}

    async def _claim(self, limit: int) -> list[PacedClaim]:
        pacing = self._pacing()
        if limit <= 0 or not pacing:
            return []
        async with self.runtime.db.pool.acquire() as conn:
            claimed = await schedules.claim_paced(conn, self.replica, pacing, limit, self.lease)
        for paced in claimed:
            SCHEDULER_CLAIMS.labels(platform=paced.claim.platform).inc()
        return claimed

    async def _wait_for_pace(self, deadline: float) -> bool:
        """Sleep until the next run may be claimed, when that is soon (its channel's pace);
        False when nothing is open or it is further off than a drain waits."""
        pacing = self._pacing()
        if not pacing:
            return False
        async with self.runtime.db.pool.acquire() as conn:
            wait = await schedules.next_claimable_in(conn, list(pacing))
        if wait is None or wait > PACE_WAIT_MAX_SECONDS or time.monotonic() + wait > deadline:
            return False
        await asyncio.sleep(max(wait, PACE_WAIT_MIN_SECONDS))
        return not self.stopping

    async def warn_waiting(self, waited_seconds: float = WAITING_WARN_SECONDS) -> int:
        """Log, once per run, each due run for a platform this process cannot post to that has
        waited `waited_seconds`; returns how many were newly reported."""
        off = [p for p in PLATFORMS if p not in self.runtime.senders.platforms]
        if not off:
            return 0
        async with self.runtime.db.pool.acquire() as conn:
            waiting = await schedules.runs_waiting_for(conn, off, waited_seconds,
                                                       WAITING_LOOKED_AT)  # fmt: skip
        fresh = [run for run in waiting if run.id not in self._warned]
        for run in fresh:
            logger.warning("run %s of schedule %s (%s:%s, slot %s) is waiting: %s is not "
                           "configured in this process, so only a replica that has it can "
                           "deliver it", run.id, run.schedule_id, run.platform, run.channel,
                           f"{run.slot:%Y-%m-%d %H:%M %Z}", run.platform)  # fmt: skip
        self._warned = {run.id for run in waiting}  # forget runs that left the queue
        return len(fresh)

    def _outcome(self, task: asyncio.Task[str]) -> str:
        try:
            return task.result()
        except Exception as exc:  # the database went away while finishing: the lease expires
            report_error(exc, where="scheduler.deliver")
            return "error"

    async def deliver(self, claim: Claim, paced_until: dt.datetime | None = None) -> str:
        """Deliver one claimed run; returns its outcome: sent, found, retry, failed or lost.
        `paced_until`: the end of the channel reservation its claim made (None: unpaced)."""
        claimed_at = time.monotonic()
        posting = False
        key = idempotency_key(claim.schedule_id, claim.slot)
        target = Target(claim.platform, claim.channel, thread=claim.thread, tenant=claim.tenant)
        try:
            sender = self.runtime.senders.get(claim.platform)
            if claim.attempts > 1 and (earlier := await self._find(sender, target, key, claim)):
                return await self._sent(claim, earlier, outcome="found")
            if claim.attempts > self.max_attempts:
                reason = f"gave up after {self.max_attempts} attempts: its deliverer stopped"
                return await self._failed(claim, reason, permanent=False)
            message = await self._message(claim)
            if paced_until is not None and time.monotonic() - claimed_at > POST_WINDOW_SECONDS / 2:
                await self._keep_pace(PacedClaim(claim, paced_until))
            # A slow build (Claude) may have eaten the lease: make sure the run is still ours.
            if time.monotonic() - claimed_at > self.lease / 3 and not await self._renew(claim):
                return self._count(claim, "lost")
            posting = True
            delivery = await sender.post(target, dataclasses.replace(message, idempotency_key=key))
            return await self._sent(claim, delivery)
        except asyncio.CancelledError:
            if not posting:
                await asyncio.shield(self._release(claim))
            raise
        except (DeliveryError, NotFound) as exc:
            retryable = getattr(exc, "retryable", True)
            return await self._failure(
                claim, str(exc), retryable, getattr(exc, "retry_after", None)
            )
        except Exception as exc:
            reference = report_error(exc, where="scheduler.deliver")
            return await self._failure(claim, f"internal error (reference {reference})", True, None)

    async def _find(
        self, sender: Sender, target: Target, key: str, claim: Claim
    ) -> Delivery | None:
        """The earlier attempt's post, if the platform can tell; a platform that cannot look
        (e.g. a missing scope) means we post — at least once beats never."""
        try:
            # No attempt can precede the run's slot (runs are made once their slot is due).
            return await sender.find(target, key, since=claim.slot)
        except DeliveryError as exc:
            if exc.retryable:
                raise
            logger.warning("cannot check for an earlier post of %s (%s): posting", key, exc)
            return None

    async def _message(self, claim: Claim) -> Outbound:
        if claim.content is not None:  # built by an earlier attempt: post the very same
            return content.from_content(claim.content)
        message = await content.build(self.runtime, claim)
        if claim.kind != "text":
            async with self.runtime.db.pool.acquire() as conn:
                await jobs.save_content(conn, claim, content.to_content(message))
        return message

    async def _keep_pace(self, paced: PacedClaim) -> None:
        """The post leaves later than its claim's reservation allowed: reserve the channel
        again and wait for the moment it gives."""
        seconds = self.pacing.get(paced.claim.platform, 0.0)
        async with self.runtime.db.pool.acquire() as conn:
            wait = await schedules.reserve(conn, paced, seconds)
        if wait > 0:
            await asyncio.sleep(wait)

    async def _renew(self, claim: Claim) -> bool:
        async with self.runtime.db.pool.acquire() as conn:
            return await jobs.renew(conn, claim, self.lease)

    async def _release(self, claim: Claim) -> None:
        try:
            async with self.runtime.db.pool.acquire() as conn:
                await jobs.release(conn, claim)
        except Exception as exc:  # the lease expires instead
            logger.warning("could not release run %s at shutdown: %s", claim.id, exc)

    async def _sent(self, claim: Claim, delivery: Delivery, *, outcome: str = "sent") -> str:
        async with self.runtime.db.pool.acquire() as conn:
            if not await jobs.mark_sent(conn, claim, delivery.message_id):
                # Our lease expired and another replica took over: it will find this post.
                logger.warning("run %s was posted after its lease was taken over", claim.id)
                return self._count(claim, "lost")
        return self._count(claim, outcome)

    async def _failure(
        self, claim: Claim, error: str, retryable: bool, retry_after: float | None
    ) -> str:
        if not retryable or claim.attempts >= self.max_attempts:
            return await self._failed(claim, error, permanent=not retryable)
        delay = backoff_seconds(claim.attempts, base=self.retry_base, cap=self.retry_max,
                                retry_after=retry_after)  # fmt: skip
        logger.info("run %s attempt %d failed (%s): retrying in %.1f s", claim.id,
                    claim.attempts, error, delay)  # fmt: skip
        async with self.runtime.db.pool.acquire() as conn:
            await jobs.retry_later(conn, claim, error, delay)
        return self._count(claim, "retry")

    async def _failed(self, claim: Claim, error: str, *, permanent: bool) -> str:
        logger.warning("scheduled run %s of schedule %s failed after %d attempt(s): %s",
                       claim.id, claim.schedule_id, claim.attempts, error)  # fmt: skip
        async with self.runtime.db.pool.acquire() as conn:
            await jobs.mark_failed(conn, claim, error, permanent=permanent)
        return self._count(claim, "failed")

    def _count(self, claim: Claim, outcome: str) -> str:
        SCHEDULED_RUNS.labels(platform=claim.platform, outcome=outcome).inc()
        if outcome == "sent":
            observe_delivery_lag(claim.platform, claim.slot)
        return outcome
