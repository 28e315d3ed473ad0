"""The composition root: the core alone never runs the scheduler; a process starts it last."""

from __future__ import annotations

import asyncio

from bot.runtime import Runtime
from bot.settings import Settings
from deskmate.process import Process
from storage.alerts import NewRule
from storage.database import Database

ALWAYS = NewRule(
    name="Always", metric_type="query_volume", condition="gte", threshold=0,
    notification_channels=("web:#general",),
)  # fmt: skip


async def _evaluations(db: Database) -> int:
    async with db.pool.acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM alert_evaluations"))


async def test_the_core_alone_evaluates_no_alerts_even_with_the_scheduler_on(
    settings: Settings, db: Database
) -> None:
    """What `deskmate chat` and `deskmate demo` run: a Runtime, which owns no scheduler, so a
    CLI process never evaluates (and fails to notify) a due alert rule."""
    looping = settings.model_copy(
        update={"scheduler_enabled": True, "scheduler_tick_seconds": 0.05}
    )
    runtime = Runtime(looping)
    await runtime.start()
    try:
        await runtime.alert_rules.add("default", ALWAYS)
        await asyncio.sleep(0.6)
    finally:
        await runtime.stop()
    assert await _evaluations(db) == 0
    assert not hasattr(runtime, "scheduler")


async def test_a_process_starts_the_scheduler_after_the_core_and_stops_it_first(
    settings: Settings, db: Database
) -> None:
    looping = settings.model_copy(
        update={"scheduler_enabled": True, "scheduler_tick_seconds": 0.05}
    )
    process = Process(looping)
    await process.start()
    try:
        assert process.scheduler is not None
        await process.runtime.alert_rules.add("default", ALWAYS)
        for _ in range(100):
            if await _evaluations(db):
                break
            await asyncio.sleep(0.05)
        scheduler = process.scheduler
    finally:
        await process.stop()
    assert await _evaluations(db) >= 1
    assert process.scheduler is None and scheduler.worker.stopping


async def test_a_process_without_the_scheduler_setting_has_none(settings: Settings) -> None:
    process = Process(settings)  # the test settings turn the loop off
    await process.start()
    try:
        assert process.scheduler is None
    finally:
        await process.stop()
