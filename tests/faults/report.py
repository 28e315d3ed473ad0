"""What the people saw, counted: every message acked, stored, answered once (or twice, or
never), and every scheduled slot delivered once (or twice, or never); written as the "latest run"
section of docs/faults.md."""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tests.faults.fakes import APOLOGY_MARK
from tests.faults.replicas import Kill
from tests.faults.traffic import Message

BEGIN, END = "<!-- latest run: written by make faults -->", "<!-- end of latest run -->"


@dataclass
class EventTally:
    sent: int = 0
    acked: int = 0
    never_acked: int = 0
    stored: int = 0
    stored_twice: int = 0
    answered_once: int = 0
    answered_twice: int = 0
    apologised: int = 0
    lost: int = 0
    resumed_by_sweeper: int = 0
    answers_broken_off: int = 0  # begun, never finished, by a replica that died or lost the DB
    stubs_left: int = 0  # … and still on screen: the resumed answer did not remove them
    deliveries: Counter[str] = field(default_factory=Counter)  # outcome → requests
    examples: dict[str, list[str]] = field(default_factory=dict)  # problem → event keys


def tally_events(
    messages: list[Message],
    finished: dict[str, list[str]],
    unfinished: Counter[str],
    stored: dict[str, int],
    attempts: dict[str, int],
    left: Counter[str] | None = None,
) -> EventTally:
    """`finished`/`unfinished`: answers by thread (the fake Slack); `stored`: the question's
    rows by ts; `attempts`: processed_events attempts by event key; `left`: the unfinished
    answers still on screen, by thread."""
    tally = EventTally(sent=len(messages))
    for message in messages:
        shown = finished.get(message.thread, [])
        tally.deliveries.update(message.outcomes)
        tally.acked += message.acked
        tally.never_acked += not message.acked
        copies = stored.get(message.event["ts"], 0)
        tally.stored += copies > 0
        tally.stored_twice += copies > 1
        tally.answered_once += len(shown) == 1
        tally.apologised += bool(shown) and APOLOGY_MARK in shown[-1]
        tally.resumed_by_sweeper += attempts.get(message.event_key, 0) > 1
        tally.answers_broken_off += unfinished.get(message.thread, 0)
        stubs = (left or Counter()).get(message.thread, 0)
        tally.stubs_left += stubs
        if stubs:  # not a failure (one answer is finished), but worth finding in the logs
            tally.examples.setdefault("stub left on screen", []).append(message.event_key)
        problem = None
        if len(shown) > 1:
            tally.answered_twice += 1
            problem = "answered twice"
        elif message.acked and not shown:
            tally.lost += 1
            problem = "lost"
        elif not message.acked:
            problem = "never acked"
        if problem:
            tally.examples.setdefault(problem, []).append(message.event_key)
    return tally


@dataclass
class SlotTally:
    slots: int = 0
    delivered_once: int = 0
    delivered_twice: int = 0
    missing: int = 0
    retried: int = 0  # runs with more than one attempt (their first replica died, or Slack 429)


def tally_slots(keys: list[str], posted: Counter[str], attempts: list[int]) -> SlotTally:
    """`keys`: every slot's idempotency key; `posted`: Slack posts by key."""
    return SlotTally(
        slots=len(keys),
        delivered_once=sum(posted[k] == 1 for k in keys),
        delivered_twice=sum(posted[k] > 1 for k in keys),
        missing=sum(posted[k] == 0 for k in keys),
        retried=sum(a > 1 for a in attempts),
    )


@dataclass
class Run:
    """Everything the report says about one run."""

    events: EventTally
    slots: SlotTally
    kills: list[Kill]
    database_down_seconds: float
    llm: Counter[str]
    seconds: float
    settings: dict[str, str]

    @property
    def passed(self) -> bool:
        e, s = self.events, self.slots
        problems = (e.lost, e.answered_twice, e.never_acked, e.stored_twice,
                    s.delivered_twice, s.missing)  # fmt: skip
        return not any(problems)


def render(run: Run) -> str:
    e, s = run.events, run.slots
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    verdict = "**passed**" if run.passed else "**FAILED**"
    lines = [
        f"{verdict}: {when}, {run.seconds:.0f} s.", "",
        "| events (people's messages) | count |", "|---|---:|",
        f"| sent | {e.sent} |", f"| acked (a 2xx, at some delivery) | {e.acked} |",
        f"| never acked (Slack gave up after 3 retries) | {e.never_acked} |",
        f"| stored (the question in its session) | {e.stored} |",
        f"| stored twice | {e.stored_twice} |",
        f"| answered once | {e.answered_once} |",
        f"| … of which the answer was an apology | {e.apologised} |",
        f"| **answered twice** | {e.answered_twice} |",
        f"| **lost** (acked, never answered or apologised) | {e.lost} |",
        f"| resumed by another replica's sweeper | {e.resumed_by_sweeper} |",
        f"| answers broken off (begun, never finished, then answered anew) "
        f"| {e.answers_broken_off} |",
        f"| … of which still on screen (not removed when answered anew) | {e.stubs_left} |", "",
        "| scheduled slots | count |", "|---|---:|",
        f"| slots | {s.slots} |", f"| delivered once | {s.delivered_once} |",
        f"| **delivered twice** | {s.delivered_twice} |", f"| **missing** | {s.missing} |",
        f"| retried (more than one attempt) | {s.retried} |", "",
        "Faults: " + "; ".join(
            f"kill -9 of replica {k.replica} at {k.at:.0f} s {k.what} "
            f"(holding {k.holding}), back {k.back_after:.0f} s later" for k in run.kills
        ) + f"; PostgreSQL stopped and started: {run.database_down_seconds:.1f} s unreachable.",
        "", "Slack's deliveries (requests by outcome): " + ", ".join(
            f"{outcome} × {n}" for outcome, n in sorted(e.deliveries.items())) + ".",
        "", "Claude's answer requests: " + ", ".join(
            f"{name} × {n}" for name, n in sorted(run.llm.items())) + ".",
        "", "Settings of the run: " + ", ".join(
            f"`{k}={v}`" for k, v in sorted(run.settings.items())) + ".",
    ]  # fmt: skip
    for problem, keys in sorted(e.examples.items()):
        lines += ["", f"{problem}: {', '.join(keys[:10])}" + (" …" if len(keys) > 10 else "")]
    return "\n".join(lines)


def write_latest(doc: Path, text: str) -> None:
    """Replace the latest-run section of `doc` (the rest of it is written by hand)."""
    current = doc.read_text()
    section = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.DOTALL)
    assert section.search(current), f"{doc} has no latest-run section"
    doc.write_text(section.sub(lambda _: f"{BEGIN}\n{text}\n{END}", current))
