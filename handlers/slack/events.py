"""Which Slack events deskmate answers, and what they mean: pure checks on the payload, no I/O.

One reply per user message: the `message` twin Slack sends with every `app_mention` is dropped
here, and retries are recognised by `event_key`, which is the same for every delivery of one
user message (team, channel, ts) whatever the envelope's event_id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Message subtypes that are a person saying something; edits, deletions, joins, bot posts and
# the rest are not.
ANSWERABLE_SUBTYPES = {None, "file_share", "thread_broadcast"}
# Slack's own bot (reminders, notices, "only visible to you" replies): nobody to answer.
SLACKBOT = "USLACKBOT"


@dataclass(frozen=True)
class SlackMessage:
    """A user message deskmate should answer (or consider, for `needs_thread_check`)."""

    team_id: str
    channel: str
    user: str
    text: str
    ts: str
    thread_ts: str | None  # the thread the user wrote in, if any
    is_direct: bool
    needs_thread_check: bool = False  # a channel thread reply: answer only if we're in it

    @property
    def event_key(self) -> str:
        return f"{self.team_id}:{self.channel}:{self.ts}"

    @property
    def reply_thread(self) -> str:
        """Replies always go in a thread: the user's, or one started on their message."""
        return self.thread_ts or self.ts

    @property
    def session_thread(self) -> str | None:
        """Channel answers are a conversation per thread; a DM's top level is one conversation."""
        return self.thread_ts if self.is_direct else self.reply_thread


def mention_of(bot_user_id: str) -> re.Pattern[str]:
    return re.compile(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>")


def strip_mention(text: str, bot_user_id: str) -> str:
    return re.sub(r"\s{2,}", " ", mention_of(bot_user_id).sub("", text)).strip()


def _from_bot(event: dict[str, Any], bot_user_id: str) -> bool:
    """Not a person: deskmate itself, Slackbot, or any app (apps post with a bot_id or a
    bot_profile, whatever user id they carry)."""
    if event.get("bot_id") or event.get("bot_profile"):
        return True
    return event.get("user") in (None, "", bot_user_id, SLACKBOT)


def reference_id(value: Any) -> str:
    """The id in a payload's `user`, `team` or `channel`: Slack sends an id or `{"id": …}`."""
    if isinstance(value, dict):
        return str(value.get("id") or "")
    return str(value or "")


def message_from_event(
    event: dict[str, Any], *, bot_user_id: str, team_id: str
) -> SlackMessage | None:
    """The message to answer in an `app_mention` or `message` event, or None to ignore it."""
    kind = event.get("type")
    if event.get("subtype") not in ANSWERABLE_SUBTYPES or _from_bot(event, bot_user_id):
        return None
    text = str(event.get("text") or "")
    channel, ts = str(event.get("channel") or ""), str(event.get("ts") or "")
    if not channel or not ts:
        return None
    team = str(event.get("team") or team_id)
    thread_ts = event.get("thread_ts")
    if kind == "app_mention":
        return SlackMessage(team, channel, str(event["user"]), strip_mention(text, bot_user_id),
                            ts, thread_ts, is_direct=False)  # fmt: skip
    if kind != "message":
        return None
    if event.get("channel_type") == "im":
        return SlackMessage(team, channel, str(event["user"]), text.strip(), ts, thread_ts,
                            is_direct=True)  # fmt: skip
    if mention_of(bot_user_id).search(text):
        return None  # the twin of an app_mention, which is answered instead
    if thread_ts and thread_ts != ts:
        return SlackMessage(team, channel, str(event["user"]), text.strip(), ts, thread_ts,
                            is_direct=False, needs_thread_check=True)  # fmt: skip
    return None


def is_retry(headers: dict[str, Any]) -> bool:
    """Slack marks redeliveries with X-Slack-Retry-Num."""
    return any(key.lower() == "x-slack-retry-num" for key in headers)


@dataclass(frozen=True)
class MessageEvent:
    """An Events API delivery of a message: the one to answer, or None for one to ignore."""

    message: SlackMessage | None


def message_event(payload: dict[str, Any]) -> MessageEvent | None:
    """The message event in a checked Events API payload, when it can be judged from the payload
    alone (deskmate's bot user is named in `authorizations`); None for anything else."""
    event = payload.get("event")
    if payload.get("type") != "event_callback" or not isinstance(event, dict):
        return None
    if event.get("type") not in ("message", "app_mention"):
        return None
    bots = [a.get("user_id") for a in payload.get("authorizations") or [] if a.get("is_bot")]
    if len(bots) != 1 or not isinstance(bots[0], str) or not bots[0]:
        return None
    team_id = str(payload.get("team_id") or "")
    return MessageEvent(message_from_event(event, bot_user_id=bots[0], team_id=team_id))
