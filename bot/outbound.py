"""The outbound interface: how the scheduler and alerts post into Slack, Teams or the web chat.

Each platform edge implements `Sender` and registers it with the runtime's `Senders`; the
scheduler only ever sees this module. Messages are platform-neutral Markdown plus optional
sources and buttons; each sender renders them its own way (Slack blocks, Adaptive Cards, HTML).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Protocol

from bot.errors import DeskmateError, NotFound
from bot.messages import Source


class DeliveryError(DeskmateError):
    """A platform refused or failed a send. `retryable` says whether trying again may help;
    `retry_after` carries the platform's own advice in seconds, when it gave one."""

    http_status = 502

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True)
class Target:
    """Where a message goes: `slack:C123`, `teams:<conversation id>`, `web:#sales`.

    `thread` is the platform's thread handle (Slack `thread_ts`, a Teams reply chain id) for
    follow-ups such as an alert's resolved message."""

    platform: str
    channel: str
    thread: str | None = None
    tenant: str = "default"

    @classmethod
    def parse(cls, text: str, *, tenant: str = "default") -> Target:
        """`"slack:C123"` → Target("slack", "C123"); NotFound-free, UsageError-free: ValueError."""
        platform, sep, channel = text.partition(":")
        if not sep or not platform or not channel:
            raise ValueError(f"{text!r} is not a target like slack:C123 or web:#general")
        return cls(platform.strip().lower(), channel.strip(), tenant=tenant)

    def __str__(self) -> str:
        return f"{self.platform}:{self.channel}"


@dataclass(frozen=True)
class Action:
    """A button: `kind` says what a click means (e.g. "alert.ack"), `value` which one."""

    label: str
    kind: str
    value: str
    style: str | None = None  # "primary" / "danger" where the platform has them


@dataclass(frozen=True)
class Outbound:
    """A message deskmate posts on its own initiative (scheduled message, digest, alert)."""

    text: str
    title: str | None = None
    sources: tuple[Source, ...] = ()
    actions: tuple[Action, ...] = ()
    # The same key on a retry lets the sender find the message it already posted, if any.
    idempotency_key: str | None = None
    fields: tuple[tuple[str, str], ...] = field(default=())  # label/value facts (alerts)


@dataclass(frozen=True)
class Delivery:
    """Where a message landed: the platform's message id and the thread replies should use."""

    message_id: str
    thread: str | None = None


class Sender(Protocol):
    """One platform's way of posting and editing messages."""

    platform: str

    async def post(self, target: Target, message: Outbound) -> Delivery:
        """Post a message (into `target.thread` when set); DeliveryError when it fails."""
        ...

    async def update(self, target: Target, message_id: str, message: Outbound) -> None:
        """Replace an earlier message's content (e.g. an acknowledged alert)."""
        ...

    async def find(
        self, target: Target, idempotency_key: str, *, since: dt.datetime | None = None
    ) -> Delivery | None:
        """The message an earlier attempt posted with this key, when the platform lets us
        tell (so a retry after a crash does not post twice); None otherwise. `since` is no
        later than the first attempt: a platform searched by time looks back that far."""
        ...


class Senders:
    """The senders this process has, by platform."""

    def __init__(self) -> None:
        self._senders: dict[str, Sender] = {}

    def register(self, sender: Sender) -> None:
        self._senders[sender.platform] = sender

    def get(self, platform: str) -> Sender:
        try:
            return self._senders[platform]
        except KeyError:
            raise NotFound(f"no {platform} connection is configured") from None

    @property
    def platforms(self) -> list[str]:
        return sorted(self._senders)
