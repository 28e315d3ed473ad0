"""The suite's platforms: a Slack that keeps what each person was shown in each thread, and a
Claude that fails as the real one does (429, 529, an error mid-stream, silence past the
client's timeout, an outage window)."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from handlers.slack.reply import THINKING
from handlers.slack.sender import DELIVERY_EVENT
from tests.support.fakes.anthropic_server import (
    Behaviour,
    Fail,
    FakeAnthropic,
    Hang,
    StreamError,
    Text,
    Tool,
)
from tests.support.fakes.slack_api import FakeSlack

# How deskmate says it could not answer (bot/conversation.py APOLOGY, and the web chat's).
APOLOGY_MARK = "Sorry —"
# Past bot/llm.py's client timeout (60 s), so a hanging call times out and is retried.
HANG_SECONDS = 65.0


@dataclass
class Answer:
    """One answer deskmate began in a person's thread: streamed (DM) or a placeholder edited
    into the answer (channel). `final` is set when the person was shown a finished answer."""

    thread: str  # channel:ts of the person's message
    kind: str  # stream | placeholder
    final: str | None = None
    removed: bool = False  # deleted by a resumed attempt (a stub of a broken-off one)


@dataclass
class AnswerSlack(FakeSlack):
    """FakeSlack (with channel history, so scheduled runs can find their earlier posts) that
    follows each answer from its start to its end, by the person's message it answers."""

    answers: dict[str, Answer] = field(default_factory=dict)  # by the answer message's ts
    _streamed: dict[str, str] = field(default_factory=dict)

    def _answer(self, method: str, body: dict[str, Any], token: str | None) -> dict[str, Any]:
        response = super()._answer(method, body, token)
        channel = str(body.get("channel") or "")
        if method == "chat.startStream":
            self._begin(response["ts"], f"{channel}:{body.get('thread_ts')}", "stream")
            self._streamed[response["ts"]] = _chunk_text(body)
        elif method == "chat.appendStream" and body.get("ts") in self._streamed:
            self._streamed[body["ts"]] += _chunk_text(body)
        elif method == "chat.stopStream" and body.get("ts") in self.answers:
            text = self._streamed.get(body["ts"], "") + _chunk_text(body)
            self.answers[body["ts"]].final = text
        elif method == "chat.postMessage" and body.get("text") == THINKING:
            self._begin(response["ts"], f"{channel}:{body.get('thread_ts')}", "placeholder")
        elif method == "chat.update" and body.get("blocks") and body.get("ts") in self.answers:
            # Only the last edit carries blocks (sources, buttons): the finished answer.
            self.answers[body["ts"]].final = str(body.get("text") or "")
        elif method == "chat.delete" and body.get("ts") in self.answers:
            self.answers[body["ts"]].removed = True
        return response

    def _begin(self, ts: str, thread: str, kind: str) -> None:
        self.answers[ts] = Answer(thread, kind)

    def finished_by_thread(self) -> dict[str, list[str]]:
        """Each person's message (channel:ts) → the finished answers they were shown."""
        shown: dict[str, list[str]] = {}
        for answer in self.answers.values():
            if answer.final is not None and not answer.removed:
                shown.setdefault(answer.thread, []).append(answer.final)
        return shown

    def posts_by_key(self) -> Counter[str]:
        """Scheduled posts that Slack accepted, by their idempotency key (the metadata every
        delivery carries)."""
        keys: Counter[str] = Counter()
        for message in (m for kept in self.history.values() for m in kept):
            metadata = message.get("metadata") or {}
            if isinstance(metadata, str):
                metadata = json.loads(metadata)
            if metadata.get("event_type") == DELIVERY_EVENT:
                keys[metadata["event_payload"]["key"]] += 1
        return keys

    def unfinished_threads(self) -> Counter[str]:
        """Answers begun and never finished (their replica died, or the database went away)."""
        return Counter(a.thread for a in self.answers.values() if a.final is None)

    def stubs_left(self) -> Counter[str]:
        """Unfinished answers still on the person's screen."""
        return Counter(a.thread for a in self.answers.values() if a.final is None and not a.removed)


def _chunk_text(body: dict[str, Any]) -> str:
    chunks = body.get("chunks") or []
    if isinstance(chunks, str):  # form-encoded bodies carry JSON strings
        chunks = json.loads(chunks)
    text = "".join(str(c.get("text", "")) for c in chunks if c.get("type") == "markdown_text")
    return str(body.get("markdown_text") or "") + text


@dataclass
class BrokenOff(Text):
    """Stream the first `shown` characters of the text, then an error event: the answer breaks
    off with words already on the person's screen, so it cannot be retried."""

    shown: int = 20


@dataclass
class FlakyClaude(FakeAnthropic):
    """Each answer request draws its behaviour: mostly a slow-ish streamed answer, sometimes a
    429 or 529, an error event mid-stream, or a hang past the timeout; during `outage()` every
    answer request gets 529, so answers end in apologies. Memory extraction (tool calls) works."""

    rng: random.Random = field(default_factory=lambda: random.Random(14))
    rate_limited: float = 0.08
    overloaded: float = 0.08
    stream_errors: float = 0.04
    broken_off: float = 0.02
    hangs: float = 0.015
    first_byte: tuple[float, float] = (0.3, 2.5)  # seconds before an answer starts streaming
    drawn: Counter[str] = field(default_factory=Counter)
    _outage_until: float = 0.0

    def outage(self, seconds: float) -> None:
        self._outage_until = time.monotonic() + seconds

    def next_behaviour(self, body: dict[str, Any]) -> Behaviour:
        if body.get("tool_choice"):
            return Tool({"operations": [{"action": "NONE"}]})
        if time.monotonic() < self._outage_until:
            self.drawn["outage 529"] += 1
            return Fail(529)
        draw = self.rng.random()
        for name, chance, behaviour in (
            ("429 rate limited", self.rate_limited,
             Fail(429, "rate_limit_error", retry_after="1")),
            ("529 overloaded", self.overloaded, Fail(529)),
            ("error before the first word", self.stream_errors, StreamError()),
            ("error mid-stream", self.broken_off, BrokenOff("Here is what I found so far")),
            ("hang past the timeout", self.hangs, Hang(HANG_SECONDS)),
        ):  # fmt: skip
            if draw < chance:
                self.drawn[name] += 1
                return behaviour
            draw -= chance
        self.drawn["answered"] += 1
        text = f"Here is what I found about it [1]. ({self.rng.randrange(10**6)})"
        return Text(text, chunk=8, delay=self.rng.uniform(*self.first_byte))

    async def _stream(
        self, request: web.Request, body: dict[str, Any], behaviour: Text | StreamError
    ) -> web.StreamResponse:
        if not isinstance(behaviour, BrokenOff):
            return await super()._stream(request, body, behaviour)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for event, data in _broken_off_events(body["model"], behaviour.text[: behaviour.shown]):
            await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())
        await response.write_eof()
        return response


def _broken_off_events(model: str, shown: str) -> list[tuple[str, dict[str, Any]]]:
    """Server-sent events of an answer that starts, says `shown`, and then fails."""
    usage = {"input_tokens": 100, "output_tokens": 1}
    message: dict[str, Any] = {
        "id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": usage,
    }  # fmt: skip
    return [
        ("message_start", {"type": "message_start", "message": message}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": shown}}),
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "fake"}}),
    ]  # fmt: skip
