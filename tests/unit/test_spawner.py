"""Background work: answers run a bounded number at a time, and nothing waiting is lost."""

from __future__ import annotations

import asyncio
import threading

from bot.spawner import Spawner


async def test_a_lane_runs_at_most_its_size_at_once_and_every_task_in_the_end() -> None:
    tasks = Spawner(lanes={"answers": 2})
    running, most, done = 0, 0, []

    async def answer(number: int) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1
        done.append(number)

    for number in range(7):
        tasks.spawn(answer(number), name=f"answer-{number}", lane="answers")
    await tasks.join()
    assert most == 2
    assert sorted(done) == list(range(7))


async def test_work_outside_a_lane_is_not_held_back_by_a_full_one() -> None:
    tasks = Spawner(lanes={"answers": 1})
    release = asyncio.Event()
    tasks.spawn(release.wait(), name="slow answer", lane="answers")
    quick = tasks.spawn(asyncio.sleep(0), name="home tab")
    await asyncio.wait_for(quick, timeout=1)
    release.set()
    await tasks.join()


async def test_a_task_cancelled_while_waiting_for_its_lane_never_starts() -> None:
    tasks = Spawner(lanes={"answers": 1})
    release, started = asyncio.Event(), []

    async def answer(number: int) -> None:
        started.append(number)
        await release.wait()

    tasks.spawn(answer(1), name="first", lane="answers")
    waiting = tasks.spawn(answer(2), name="second", lane="answers")
    await asyncio.sleep(0.01)
    await tasks.close(grace_seconds=0.05)
    assert waiting.cancelled()
    assert started == [1]


def test_join_returns_when_a_task_has_finished_before_the_loop_forgot_it() -> None:
    """A task that finishes just before join() looks: done, still known, its done callback
    queued behind join. join() must yield to the loop instead of spinning in place."""
    joined: list[int] = []

    async def scenario() -> None:
        tasks = Spawner()
        ready = asyncio.Event()
        tasks.spawn(ready.wait(), name="quick")
        await asyncio.sleep(0)  # the task waits on the event
        ready.set()  # its wake-up is queued
        await asyncio.sleep(0)  # it finishes; forgetting it is queued behind this coroutine
        await tasks.join()
        joined.append(tasks.running)

    # In a thread with a deadline: a join that never yields would hang the test run itself.
    thread = threading.Thread(target=asyncio.run, args=(scenario(),), daemon=True)
    thread.start()
    thread.join(5)
    assert joined == [0]
