"""Button clicks from any platform (👍/👎 on answers, Acknowledge on alerts), dispatched by kind.

Platform edges turn a click into a `Click` and render the `ClickResult`; the business rule for
each kind lives with its subject (bot/feedback.py, the alerts module) and registers here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.errors import NotFound
from bot.outbound import Outbound


@dataclass(frozen=True)
class Click:
    """Who clicked which button. `value` is what the button carried (e.g. "412:up")."""

    kind: str
    value: str
    platform: str
    user_id: str
    workspace_id: str = ""
    tenant: str = "default"
    email: str | None = None
    display_name: str | None = None
    trusted_email: str | None = None


@dataclass(frozen=True)
class ClickResult:
    """What the clicker is told, and optionally the new content of the clicked message."""

    text: str
    replace_with: Outbound | None = None


ClickHandler = Callable[[Click], Awaitable[ClickResult]]


class Actions:
    """The click handlers this process knows, by kind."""

    def __init__(self) -> None:
        self._handlers: dict[str, ClickHandler] = {}

    def register(self, kind: str, handler: ClickHandler) -> None:
        self._handlers[kind] = handler

    async def dispatch(self, click: Click) -> ClickResult:
        handler = self._handlers.get(click.kind)
        if handler is None:
            raise NotFound(f"unknown button {click.kind!r}")
        return await handler(click)
