"""Shared by the scheduler tests (no tests here): a fake Slack that remembers what it posted
per channel, so `conversations.history` lets a retried run find its earlier post."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from handlers.slack.sender import DELIVERY_EVENT
from tests.support.fakes.slack_api import FakeSlack


@dataclass
class HistorySlack(FakeSlack):
    """FakeSlack whose channels keep their messages (newest first in history, as Slack)."""

    channels: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    def _answer(self, method: str, body: dict[str, Any], *rest: Any) -> dict[str, Any]:
        if method == "conversations.history":
            messages = self.channels.get(str(body.get("channel")), [])
            limit = int(body.get("limit") or 100)
            return {"messages": list(reversed(messages))[:limit], "has_more": False}
        answer = super()._answer(method, body, *rest)
        if method == "chat.postMessage":
            self.channels[str(body.get("channel"))].append(
                {"ts": answer["ts"], "text": body.get("text", ""), "metadata": body.get("metadata")}
            )
        return answer

    def posts_by_key(self) -> Counter[str]:
        """How many times each idempotency key was posted."""
        keys: Counter[str] = Counter()
        for call in self.called("chat.postMessage"):
            metadata = call.body.get("metadata") or {}
            if metadata.get("event_type") == DELIVERY_EVENT:
                keys[metadata["event_payload"]["key"]] += 1
        return keys

    def ts_of(self, key: str) -> list[str]:
        """The ts of every stored message carrying the key."""
        return [
            m["ts"]
            for messages in self.channels.values()
            for m in messages
            if ((m.get("metadata") or {}).get("event_payload") or {}).get("key") == key
        ]
