"""The alert state machine, as a pure function: ok → pending → firing → resolved (→ ok).

Kept free of I/O so every transition is tested with an injected clock and plain values.
"""

from __future__ import annotations

import datetime as dt
import operator
from dataclasses import dataclass
from enum import StrEnum

CONDITIONS = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "eq": operator.eq,
    "ne": operator.ne,
}
SYMBOLS = {"gt": ">", "gte": "≥", "lt": "<", "lte": "≤", "eq": "=", "ne": "≠"}


class Notify(StrEnum):
    NONE = "none"
    FIRING = "firing"
    REMINDER = "reminder"  # still firing, not acknowledged, cooldown elapsed
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Decision:
    state: str  # the rule's state after this evaluation: ok, pending or firing
    pending_since: dt.datetime | None
    notify: Notify
    outcome: str  # what the evaluation row says: ok, pending, firing, resolved, no_data


def breached(condition: str, value: float, threshold: float) -> bool:
    return bool(CONDITIONS[condition](value, threshold))


def decide(
    *,
    state: str,
    pending_since: dt.datetime | None,
    value: float | None,
    condition: str,
    threshold: float,
    for_minutes: int,
    now: dt.datetime,
    last_notified_at: dt.datetime | None = None,
    acknowledged: bool = False,
    cooldown_minutes: int = 60,
) -> Decision:
    """The next state of a rule given this evaluation's value (None = no data in the window).

    No data is not a breach: a pending rule returns to ok and a firing one resolves, and the
    evaluation row records `no_data` rather than pretending the value was 0."""
    bad = value is not None and breached(condition, value, threshold)
    if not bad:
        quiet = "no_data" if value is None else "ok"
        if state == "firing":
            return Decision("ok", None, Notify.RESOLVED, "resolved")
        return Decision("ok", None, Notify.NONE, quiet)
    if state == "firing":
        due = last_notified_at is None or now - last_notified_at >= dt.timedelta(
            minutes=cooldown_minutes
        )
        notify = Notify.REMINDER if due and not acknowledged else Notify.NONE
        return Decision("firing", None, notify, "firing")
    since = pending_since if state == "pending" and pending_since else now
    if now - since >= dt.timedelta(minutes=for_minutes):
        return Decision("firing", None, Notify.FIRING, "firing")
    return Decision("pending", since, Notify.NONE, "pending")
