"""When runs are due: cron in a time zone across DST changes, catch-up, backoff. Pure."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.cron import (
    CronError,
    backoff_seconds,
    catch_up_slot,
    idempotency_key,
    latest_slot,
    next_slot,
    parse_cron,
)
from scheduler.loop import run_slot
from storage.schedules import DueSchedule

UTC = dt.UTC


def at(text: str) -> dt.datetime:
    """`"2026-03-29 01:30"` as a UTC instant."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def slots(cron: str, timezone: str, after: str, count: int) -> list[str]:
    found, moment = [], at(after)
    for _ in range(count):
        moment = next_slot(cron, timezone, moment)
        found.append(f"{moment:%Y-%m-%d %H:%M}")
    return found


def test_berlin_spring_forward_daily_keeps_local_time_and_fires_once_in_the_gap() -> None:
    # 29 March 2026: 02:00 CET jumps to 03:00 CEST. 09:00 local is 08:00 UTC, then 07:00 UTC.
    assert slots("0 9 * * *", "Europe/Berlin", "2026-03-27 12:00", 4) == [
        "2026-03-28 08:00", "2026-03-29 07:00", "2026-03-30 07:00", "2026-03-31 07:00",
    ]  # fmt: skip
    # 02:30 does not exist that night: it fires once, at 03:30 CEST (01:30 UTC).
    assert slots("30 2 * * *", "Europe/Berlin", "2026-03-27 12:00", 3) == [
        "2026-03-28 01:30", "2026-03-29 01:30", "2026-03-30 00:30",
    ]  # fmt: skip


def test_berlin_weekdays_use_crons_day_numbers_across_the_change() -> None:
    # 1-5 is Monday to Friday (cron), not Tuesday to Saturday (APScheduler's own numbering).
    assert slots("0 9 * * 1-5", "Europe/Berlin", "2026-03-26 12:00", 3) == [
        "2026-03-27 08:00", "2026-03-30 07:00", "2026-03-31 07:00",
    ]  # fmt: skip


def test_berlin_fall_back_fires_an_ambiguous_time_once() -> None:
    # 25 October 2026: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
    assert slots("30 2 * * *", "Europe/Berlin", "2026-10-24 12:00", 3) == [
        "2026-10-25 00:30", "2026-10-26 01:30", "2026-10-27 01:30",
    ]  # fmt: skip


def test_new_york_spring_forward_and_fall_back() -> None:
    # 8 March 2026: EST → EDT; 09:00 local moves from 14:00 to 13:00 UTC.
    assert slots("0 9 * * *", "America/New_York", "2026-03-06 20:00", 3) == [
        "2026-03-07 14:00", "2026-03-08 13:00", "2026-03-09 13:00",
    ]  # fmt: skip
    # 1 November 2026: EDT → EST; 01:30 happens twice and fires once, then 06:30 UTC.
    assert slots("30 1 * * *", "America/New_York", "2026-10-31 00:00", 3) == [
        "2026-10-31 05:30", "2026-11-01 05:30", "2026-11-02 06:30",
    ]  # fmt: skip


def test_new_york_hourly_never_repeats_or_sticks_in_the_repeated_hour() -> None:
    # APScheduler's own aware matching returns 06:30 UTC forever here; ours moves on.
    assert slots("30 * * * *", "America/New_York", "2026-11-01 04:00", 4) == [
        "2026-11-01 04:30", "2026-11-01 05:30", "2026-11-01 07:30", "2026-11-01 08:30",
    ]  # fmt: skip
    moment = at("2026-11-01 06:10")  # inside the repeated hour (01:10 EST)
    assert next_slot("30 * * * *", "America/New_York", moment) == at("2026-11-01 07:30")


def test_cron_semantics_sunday_seven_and_either_day_field() -> None:
    assert slots("0 12 * * 7", "UTC", "2026-01-01 00:00", 2) == [
        "2026-01-04 12:00", "2026-01-11 12:00",
    ]  # fmt: skip
    # Both day fields restricted: the 1st of the month OR a Monday.
    assert slots("0 0 1 * mon", "UTC", "2026-01-25 00:00", 3) == [
        "2026-01-26 00:00", "2026-02-01 00:00", "2026-02-02 00:00",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 9 * *", "needs five fields"),
        ("61 * * * *", "higher than the maximum"),
        ("0 9 * * 8", "'8' is not a day of the week"),
        ("0 9 * * fri-mon", "runs backwards"),
        ("0 9 31 2 *", "never fires"),
    ],
)
def test_bad_expressions_say_why(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        next_slot(expression, "UTC", at("2026-01-01 00:00"))


def test_catch_up_sends_the_latest_missed_slot_once() -> None:
    now = at("2026-03-10 12:00")
    # Down since 1 March: one run, for this morning's 09:00 Berlin slot.
    assert catch_up_slot("0 9 * * *", "Europe/Berlin", at("2026-03-01 08:00"), now) == at(
        "2026-03-10 08:00"
    )
    # On time: the due slot itself.
    assert catch_up_slot("0 9 * * *", "Europe/Berlin", at("2026-03-10 08:00"), now) == at(
        "2026-03-10 08:00"
    )
    # Every minute, down for weeks: still one run, cheaply found.
    assert catch_up_slot("* * * * *", "UTC", at("2026-02-01 00:00"), now) == now
    assert latest_slot("0 9 1 1 *", "UTC", now) == at("2026-01-01 09:00")


def test_run_slot_of_a_late_schedule_moves_next_past_now() -> None:
    now = at("2026-03-10 12:00")
    due = DueSchedule(7, 1, None, "0 9 * * *", "Europe/Berlin", at("2026-03-01 08:00"))
    slot = run_slot(due, now)
    assert (slot.slot, slot.next_run_at) == (at("2026-03-10 08:00"), at("2026-03-11 08:00"))
    once = DueSchedule(8, 1, at("2026-03-10 11:00"), None, "UTC", at("2026-03-10 11:00"))
    assert (run_slot(once, now).slot, run_slot(once, now).next_run_at) == (once.run_at, None)


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    delays = [backoff_seconds(n, base=2, cap=60) for n in (1, 2, 3, 4, 10)]
    assert 1 <= delays[0] <= 2 and 2 <= delays[1] <= 4 and 4 <= delays[2] <= 8
    assert 30 <= delays[4] <= 60
    assert backoff_seconds(1, base=2, cap=60, retry_after=30) == 30


def test_idempotency_key_is_stable_per_slot() -> None:
    slot = dt.datetime(2026, 3, 10, 9, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert idempotency_key(12, slot) == "deskmate-schedule-12-20260310T080000.000000Z"
    assert idempotency_key(12, slot) == idempotency_key(12, slot.astimezone(UTC))
    assert parse_cron("0 9 * * 1-5") is parse_cron("0 9 * * 1-5")  # parsed once
