"""When runs are due: cron expressions in a time zone, catch-up, retry backoff. Pure functions.

Cron expressions are the classic five fields (minute hour day-of-month month day-of-week) with
cron's meaning: day-of-week 0 or 7 is Sunday, and when both day fields are restricted a day
matching either fires. APScheduler's CronTrigger does the field matching, on wall-clock time
(see `next_slot` for why); `CronSpec` translates the parts where APScheduler differs from cron.

DST rules (the ones people expect from cron): a wall-clock time fires once, at its first
occurrence when a fall-back repeats it; a time that a spring-forward skips fires at the
corresponding instant after the jump (02:30 → 03:30), and never twice in that hour.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
import re
import zoneinfo
from dataclasses import dataclass

from apscheduler.triggers.cron import CronTrigger

UTC = dt.UTC
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_ITEM = re.compile(r"^(\*|[a-z0-9]+)(?:-([a-z0-9]+))?(?:/(\d+))?$")
# How far back `latest_slot` looks, window after window.
_CATCH_UP_WINDOWS = (dt.timedelta(hours=1), dt.timedelta(days=1), dt.timedelta(days=35),
                     dt.timedelta(days=400))  # fmt: skip


class CronError(ValueError):
    """The text is not a five-field cron expression; the message says why."""


def _day_number(text: str) -> int:
    if text.isdigit() and 0 <= int(text) <= 7:
        return int(text) % 7
    if text in _DAY_NAMES:
        return _DAY_NAMES.index(text)
    raise CronError(f"{text!r} is not a day of the week (0-7 or sun-sat)")


def _days_of_week(field: str) -> str:
    """Cron's day-of-week field in APScheduler's words: 0/7 = Sunday there, Monday here."""
    if field == "*":
        return "*"
    days: set[int] = set()
    for item in field.lower().split(","):
        match = _ITEM.match(item)
        if match is None:
            raise CronError(f"{item!r} is not a day-of-week item")
        start_text, end_text, step_text = match.groups()
        step = int(step_text or 1)
        if step < 1:
            raise CronError("a step must be at least 1")
        if start_text == "*":
            start, end = 0, 6
        else:
            start = _day_number(start_text)
            end = _day_number(end_text) if end_text else (6 if step_text else start)
            if end_text == "7":
                end = 7
        if end < start:
            raise CronError(f"{item!r} runs backwards")
        days.update(day % 7 for day in range(start, end + 1, step))
    return ",".join(_DAY_NAMES[d] for d in sorted(days))


@dataclass(frozen=True)
class CronSpec:
    """A parsed expression; `next_wall` answers on naive wall-clock times (held as UTC)."""

    text: str
    triggers: tuple[CronTrigger, ...]

    def next_wall(self, wall: dt.datetime) -> dt.datetime:
        """The first matching wall-clock time strictly after `wall`."""
        after = wall + dt.timedelta(microseconds=1)
        found = [t.get_next_fire_time(None, after) for t in self.triggers]
        candidates = [f for f in found if f is not None]
        if not candidates:
            raise CronError(f"{self.text!r} never fires")
        return min(candidates)


@functools.lru_cache(maxsize=1024)
def parse_cron(text: str) -> CronSpec:
    """A five-field cron expression, or CronError saying what is wrong with it."""
    fields = text.split()
    if len(fields) != 5:
        raise CronError(
            f"{text!r} needs five fields (minute hour day month weekday), e.g. '0 9 * * 1-5'"
        )
    minute, hour, day, month, weekday = fields
    weekdays = _days_of_week(weekday)

    def trigger(day_field: str, weekday_field: str) -> CronTrigger:
        try:
            return CronTrigger(minute=minute, hour=hour, day=day_field, month=month,
                               day_of_week=weekday_field, timezone=UTC)  # fmt: skip
        except ValueError as exc:
            raise CronError(f"{text!r}: {exc}") from None

    # Cron fires on a day matching EITHER day field when both are restricted (Vixie cron
    # treats a field starting with '*' as unrestricted); APScheduler would require both.
    if not day.startswith("*") and not weekday.startswith("*"):
        return CronSpec(text, (trigger(day, "*"), trigger("*", weekdays)))
    return CronSpec(text, (trigger(day, weekdays),))


def zone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone; ValueError for an unknown name."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name like Europe/Berlin)"
        ) from None


def next_slot(cron: str, timezone: str, after: dt.datetime) -> dt.datetime:
    """The first instant strictly after `after` at which `cron` fires in `timezone` (UTC).

    Matching happens on wall-clock time and only then becomes an instant, because
    APScheduler 3.11 matching on aware times repeats the fall-back hour's second 01:30 forever
    (it returns the same instant for every `now` inside that hour)."""
    spec, tz = parse_cron(cron), zone(timezone)
    wall = after.astimezone(tz).replace(tzinfo=UTC, fold=0)
    for _ in range(48):  # a few steps suffice even across a DST change
        wall = spec.next_wall(wall)
        # fold=0: an ambiguous wall time is its first occurrence; a skipped one maps past the gap.
        instant = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
        if instant > after:
            return instant
    raise CronError(f"{cron!r} found no slot after {after.isoformat()}")


def latest_slot(cron: str, timezone: str, at_or_before: dt.datetime) -> dt.datetime | None:
    """The last instant at or before `at_or_before` at which `cron` fired (within ~13 months);
    found by looking back over widening windows, so frequent expressions stay cheap."""
    for window in _CATCH_UP_WINDOWS:
        slot = next_slot(cron, timezone, at_or_before - window)
        if slot <= at_or_before:
            while (following := next_slot(cron, timezone, slot)) <= at_or_before:
                slot = following
            return slot
    return None


def catch_up_slot(cron: str, timezone: str, due: dt.datetime, now: dt.datetime) -> dt.datetime:
    """The one slot to send for a schedule whose next slot `due` (≤ now) has come.

    Normally that is `due` itself. When the service was down across several slots, it is the
    latest slot that has passed: one catch-up run instead of a burst (the digest it carries
    still covers everything since the last delivered run)."""
    if next_slot(cron, timezone, due) > now:
        return due
    latest = latest_slot(cron, timezone, now)
    return latest if latest is not None and latest > due else due


def backoff_seconds(
    attempt: int, *, base: float, cap: float, retry_after: float | None = None
) -> float:
    """Exponential backoff with jitter (half to all of the step, so retries of many runs do
    not line up yet always back off), never sooner than the platform's own Retry-After."""
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    return max(random.uniform(ceiling / 2, ceiling), retry_after or 0.0)


def idempotency_key(schedule_id: int, slot: dt.datetime) -> str:
    """The same for every attempt of one run, so a retry can find its earlier post."""
    return f"deskmate-schedule-{schedule_id}-{slot.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}"
