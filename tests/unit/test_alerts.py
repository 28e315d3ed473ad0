"""Alert rules, the pure state machine."""

from __future__ import annotations

import datetime as dt

from bot.alerts.engine import decide

T0 = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)


def test_decide_is_pure_and_fires_at_once_without_for_minutes() -> None:
    decision = decide(
        state="ok", pending_since=None, value=3, condition="gte", threshold=3, for_minutes=0, now=T0
    )
    assert (decision.state, decision.notify.value) == ("firing", "firing")
