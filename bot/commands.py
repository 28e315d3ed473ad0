"""The words users type to manage their memories and look things up (SPEC §4.7).

`parse_command` is pure: the same text gives the same command in Slack, Teams, the web chat and
the terminal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Remember:
    fact: str


@dataclass(frozen=True)
class Forget:
    target: str  # "#12" / "12" for an id, otherwise text to match


@dataclass(frozen=True)
class ListMemories:
    pass


@dataclass(frozen=True)
class FindDocs:
    query: str


@dataclass(frozen=True)
class ListAlerts:
    pass


@dataclass(frozen=True)
class ScheduleCommand:
    arguments: str  # what followed "schedule", parsed by bot/schedule_commands.py


@dataclass(frozen=True)
class Help:
    pass


Command = Remember | Forget | ListMemories | FindDocs | ListAlerts | ScheduleCommand | Help

_PREFIX = re.compile(r"^\s*(?:/deskmate\s+|@?deskmate[,:]?\s+)?", re.IGNORECASE)
_REMEMBER = re.compile(r"^(?:please\s+)?remember(?:\s+that)?[\s:,]+(?P<fact>.+)$", re.I | re.S)
_FORGET = re.compile(r"^(?:please\s+)?forget(?:\s+that)?[\s:,]+(?P<target>.+)$", re.I | re.S)
_LIST = re.compile(
    r"^(?:memories|my memories|list memories|what do you (?:know|remember) about me\??)$", re.I
)
_DOCS = re.compile(r"^docs?\s+(?P<query>.+)$", re.I | re.S)
_ALERTS = re.compile(r"^(?:alerts|firing alerts|list alerts)$", re.I)
_SCHEDULE = re.compile(r"^schedules?(?:\s+(?P<arguments>.*))?$", re.I | re.S)
_HELP = re.compile(r"^(?:help|\?)$", re.I)

HELP_TEXT = """Here is what I can do:
• Ask me anything: I answer from the documents your departments may read, and cite them.
• `remember <fact>` — I keep it and use it when you talk to me directly.
• `forget <text or #id>` — I drop a memory.
• `memories` — what I know about you, shown to you alone (never to a channel).
• `docs <question>` — the passages I would cite, without an answer.
• `alerts` — the alerts firing now.
• `schedule list|add|pause|resume|delete|run-now …` — messages posted here on a schedule.
In channels, I only quote documents the channel is cleared for, and never your memories."""


def parse_command(text: str) -> Command | None:
    """The command in `text`, or None when it is an ordinary question."""
    body = _PREFIX.sub("", text, count=1).strip()
    if match := _REMEMBER.match(body):
        return Remember(match["fact"].strip().rstrip("."))
    if match := _FORGET.match(body):
        return Forget(match["target"].strip().rstrip("."))
    if _LIST.match(body):
        return ListMemories()
    if match := _DOCS.match(body):
        return FindDocs(match["query"].strip())
    if _ALERTS.match(body):
        return ListAlerts()
    if match := _SCHEDULE.match(body):
        return ScheduleCommand((match["arguments"] or "list").strip())
    if _HELP.match(body):
        return Help()
    return None


def memory_id(target: str) -> int | None:
    """`"#12"` or `"12"` → 12; anything else → None."""
    match = re.fullmatch(r"#?(\d+)", target.strip())
    return int(match[1]) if match else None
