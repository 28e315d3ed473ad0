"""The scheduler loop inside every deskmate process: APScheduler drives the jobs, PostgreSQL holds
the state, so every replica may run every job at once.

Jobs: `scheduler.tick` materialises due runs and wakes the delivery worker; `episodes.nightly`
summarises past sessions. `alerts.evaluate` evaluates the alert rules that are due.
`events.sweep` answers accepted platform events that a dead replica left unfinished.
`retention.daily` deletes what the high-volume tables keep past their retention, on the one
replica that claims the day's slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot import metrics
from bot.cron import catch_up_slot, latest_slot, next_slot
from bot.episodes import Episodes
from bot.errors import report_error
from scheduler.worker import DeliveryWorker
from storage import jobs, retention, schedules
from storage.database import Database

if TYPE_CHECKING:
    from bot.runtime import Runtime
    from bot.settings import Settings

logger = logging.getLogger("deskmate.scheduler")

Job = Callable[[], Awaitable[dict[str, Any] | None]]
STOP_GRACE_SECONDS = 10.0
MATERIALISE_BATCH = 500


class CronSlots(BaseTrigger):
    """An APScheduler trigger on `bot.cron` (cron's meaning, DST-correct)."""

    def __init__(self, cron: str, timezone: str = "UTC") -> None:
        self.cron, self.timezone = cron, timezone

    def get_next_fire_time(
        self, previous_fire_time: dt.datetime | None, now: dt.datetime
    ) -> dt.datetime:
        after = now - dt.timedelta(microseconds=1)
        if previous_fire_time is not None:
            after = min(after, previous_fire_time)
        return next_slot(self.cron, self.timezone, after)

    def __str__(self) -> str:
        return f"cron[{self.cron} {self.timezone}]"


def replica_name() -> str:
    """Who claims runs and records job runs: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def run_slot(due: schedules.DueSchedule, now: dt.datetime) -> schedules.RunSlot:
    """The run to materialise for a due schedule, and the schedule's following slot.

    A recurring schedule that missed several slots (the service was down) gets one run, for
    the latest missed slot, not a burst; a one-off gets its run and no next slot."""
    if due.cron is None:
        return schedules.RunSlot(due.id, due.tenant_id, due.next_run_at, None)
    slot = catch_up_slot(due.cron, due.timezone, due.next_run_at, now)
    return schedules.RunSlot(due.id, due.tenant_id, slot,
                             next_slot(due.cron, due.timezone, max(slot, now)))  # fmt: skip


async def materialise(db: Database, batch: int = MATERIALISE_BATCH) -> int:
    """Turn every due schedule into its run; returns the runs created by this call."""
    created = 0
    while True:
        async with db.transaction() as conn:
            now = await schedules.db_now(conn)
            due = await schedules.due_schedules(conn, batch)
            slots, broken = [], []
            for schedule in due:
                try:
                    slots.append(run_slot(schedule, now))
                except ValueError as exc:  # a time zone this machine no longer knows, say
                    broken.append((schedule.id, f"cannot compute its next slot: {exc}"))
            created += await schedules.insert_runs(conn, slots)
            await schedules.fail_schedules(conn, broken)
        if len(due) < batch:
            return created


def retention_policy(settings: Settings) -> retention.Policy:
    return retention.Policy(
        runs_days=settings.retention_runs_days,
        evaluations_days=settings.retention_evaluations_days,
        events_days=settings.retention_events_days,
        job_runs_days=settings.retention_job_runs_days,
        measurements_days=settings.retention_measurements_days,
        event_lease_seconds=settings.event_lease_seconds,
        batch_size=settings.retention_batch_size,
    )


class Scheduler:
    """The APScheduler loop and the delivery worker of one process: `start()`, `stop()`."""

    def __init__(self, runtime: Runtime, *, replica: str | None = None) -> None:
        self.runtime = runtime
        self.replica = replica or replica_name()
        self.worker = DeliveryWorker(runtime, self.replica)
        self.tick_seconds = runtime.settings.scheduler_tick_seconds
        self._aps: AsyncIOScheduler | None = None
        self._wake = asyncio.Event()
        self._worker_task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[Any]] = set()
        self._stopping = False

    def start(self) -> None:
        """Start the jobs and the worker on the running event loop."""
        # Memory job store: PostgreSQL is the source of truth, so nothing here needs to survive
        # a restart. A firing is "missed" only when this loop was blocked past its time; for
        # every job here a late run is still right (each reads what is due from the database)
        # and skipping would only delay deliveries, hence misfire_grace_time=None (run however
        # late) with coalesce=True (a backlog of missed firings runs once: they would all do
        # the same work) and max_instances=1 (an overrunning job is not doubled up in this
        # process; other replicas' SKIP LOCKED claims keep theirs apart).
        self._aps = AsyncIOScheduler(
            jobstores={"default": MemoryJobStore()},
            executors={"default": AsyncIOExecutor()},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=dt.UTC,
            event_loop=asyncio.get_running_loop(),
        )
        self._aps.add_listener(self._on_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED)
        # The first tick waits a random moment: replicas started together do not tick in step.
        first = dt.datetime.now(dt.UTC) + dt.timedelta(
            seconds=random.uniform(0, min(1.0, self.tick_seconds))
        )
        self.add_job("scheduler.tick", self.tick, IntervalTrigger(seconds=self.tick_seconds),
                     quiet=True, next_run_time=first)  # fmt: skip
        self.add_job("episodes.nightly", self.nightly_episodes,
                     CronSlots(self.runtime.settings.scheduler_episodes_cron))  # fmt: skip
        # Alert rules are looked at every tick; each rule is evaluated only when its own interval
        # is due, once across replicas (bot/alerts/evaluator.py).
        self.add_job("alerts.evaluate", self.evaluate_alerts,
                     IntervalTrigger(seconds=self.tick_seconds), quiet=True)  # fmt: skip
        # Accepted platform events whose answer never finished (a replica died) are answered
        # again by whichever replica looks first (bot/event_ledger.py).
        self.add_job("events.sweep", self.sweep_events,
                     IntervalTrigger(seconds=self.tick_seconds), quiet=True)  # fmt: skip
        # Every replica fires at the same cron slot; the first to claim it does the work.
        self.add_job("retention.daily", self.apply_retention,
                     CronSlots(self.runtime.settings.retention_cron), quiet=True)  # fmt: skip
        self._worker_task = self.runtime.tasks.spawn(self._work(), name="scheduler-worker")
        self._aps.start()
        logger.info("scheduler started as %s (tick every %.1f s)", self.replica, self.tick_seconds)

    def add_job(self, name: str, func: Job, trigger: BaseTrigger, *, quiet: bool = False,
                **options: Any) -> None:  # fmt: skip
        """Run `func` on `trigger`; each run is written to `job_runs` (a `quiet` job only when
        it did something or failed) and a failure goes to the one error path."""
        assert self._aps is not None, "start() the scheduler first"
        self._aps.add_job(self._recorded(name, func, quiet), trigger, id=name, name=name,
                          **options)  # fmt: skip

    def wake(self) -> None:
        """Let the worker look for due runs now."""
        self._wake.set()

    async def stop(self, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """No new jobs or claims; running work gets `grace_seconds`, then is cancelled (a run
        that had not reached the platform is handed back at once, others when their lease
        expires)."""
        self._stopping = self.worker.stopping = True
        if self._aps is not None and self._aps.running:
            self._aps.pause()  # no new firings; running jobs get the grace period below
        self._wake.set()
        tasks = [t for t in (self._worker_task, *self._running) if t is not None and not t.done()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_seconds)
            for task in pending:
                logger.warning("cancelling %s: still running at shutdown", task.get_name())
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._aps is not None and self._aps.running:
            self._aps.shutdown(wait=False)
        logger.info("scheduler stopped")

    # --- the jobs ----------------------------------------------------------------------------

    async def tick(self) -> dict[str, Any]:
        created = await materialise(self.runtime.db)
        self.wake()
        waiting = await self.worker.warn_waiting()
        details = {"runs_created": created} if created else {}
        return details | ({"runs_waiting_for_platform": waiting} if waiting else {})

    async def evaluate_alerts(self) -> dict[str, Any]:
        with metrics.ALERT_CYCLE_SECONDS.time():
            evaluated = await self.runtime.alert_evaluator.run_due()
        return {"evaluated": evaluated} if evaluated else {}

    async def sweep_events(self) -> dict[str, Any]:
        resumed = await self.runtime.events.sweep(self.runtime.tasks.spawn)
        return {"resumed": resumed} if resumed else {}

    async def apply_retention(self, now: dt.datetime | None = None) -> dict[str, Any]:
        """Delete rows past their retention, when this replica is the one to claim the current
        retention slot (the cron's latest at `now`); the others return at once."""
        settings = self.runtime.settings
        now = now or dt.datetime.now(dt.UTC)
        slot = latest_slot(settings.retention_cron, "UTC", now)
        if slot is None:
            return {}
        async with self.runtime.db.pool.acquire() as conn:
            if not await retention.claim(conn, "retention.daily", slot, self.replica):
                return {}
        deleted = await retention.purge(self.runtime.db, retention_policy(settings))
        return {"slot": slot.isoformat(), "deleted": deleted}

    async def nightly_episodes(self) -> dict[str, Any]:
        assert self.runtime.embedder is not None
        episodes = Episodes(self.runtime.db, self.runtime.embedder, self.runtime.claude)
        report = await episodes.summarise_past_sessions()
        return {"summarised": report.summarised}

    async def _work(self) -> None:
        """The worker: drain whenever woken, and at least once per tick interval."""
        while not self._stopping:
            started = time.monotonic()
            try:
                outcomes = await self.worker.drain()
                if outcomes:
                    await self._record("scheduler.deliver", "succeeded", started, dict(outcomes))
                    continue  # more may be due already: look again at once
            except Exception as exc:
                reference = report_error(exc, where="scheduler.worker")
                await self._record("scheduler.deliver", "failed", started, {},
                                   f"{type(exc).__name__} (reference {reference})")  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.tick_seconds)
            self._wake.clear()

    def _recorded(self, name: str, func: Job, quiet: bool) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            task = asyncio.current_task()
            if task is not None:
                self._running.add(task)
            started = time.monotonic()
            try:
                details = await func() or {}
            except asyncio.CancelledError:
                if not self._stopping:
                    raise
                logger.info("job %s was cancelled at shutdown", name)
                return
            except Exception as exc:
                reference = report_error(exc, where=f"scheduler:{name}")
                await self._record(name, "failed", started, {},
                                   f"{type(exc).__name__} (reference {reference})")  # fmt: skip
                return
            finally:
                self._running.discard(task)
            if details or not quiet:
                await self._record(name, "succeeded", started, details)

        return run

    async def _record(self, job: str, status: str, started: float, details: dict[str, Any],
                      error: str | None = None) -> None:  # fmt: skip
        try:
            async with self.runtime.db.pool.acquire() as conn:
                await jobs.record_job(conn, job=job, replica=self.replica, status=status,
                                      seconds=time.monotonic() - started, details=details,
                                      error=error)  # fmt: skip
        except Exception as exc:  # the database being down is reported by the job itself
            logger.warning("could not record job run of %s: %s", job, exc)

    def _on_event(self, event: JobExecutionEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            logger.warning("job %s missed its time %s", event.job_id, event.scheduled_run_time)
        elif event.exception is not None and not isinstance(
            event.exception, asyncio.CancelledError
        ):
            # Our wrapper reports its jobs' failures itself; this catches anything that escapes.
            report_error(event.exception, where=f"scheduler:{event.job_id}")
