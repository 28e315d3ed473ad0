"""A local fake of Anthropic's Messages API: SSE streaming, tool use, scripted failures.

Every request is recorded, so tests assert on exactly what deskmate sent to Claude.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Text:
    """Answer with this text, streamed in pieces of `chunk` characters."""

    text: str
    chunk: int = 12
    delay: float = 0.0  # before the first byte


@dataclass
class Tool:
    """Answer a tool-use request with this input."""

    input: dict[str, Any]


@dataclass
class Fail:
    """Answer with an HTTP error, e.g. 529 overloaded or 429 with Retry-After."""

    status: int
    error_type: str = "overloaded_error"
    retry_after: str | None = None


@dataclass
class StreamError:
    """Start a 200 stream, then send an SSE `error` event (as the API does when overloaded)."""

    error_type: str = "overloaded_error"


@dataclass
class Hang:
    """Say nothing for `seconds` (longer than the client's timeout)."""

    seconds: float


Behaviour = Text | Tool | Fail | StreamError | Hang


@dataclass
class FakeAnthropic:
    """The fake's state: a script of behaviours (then a default) and the recorded requests."""

    script: list[Behaviour] = field(default_factory=list)
    default_text: str = "Here is the answer [1]."
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    url: str = ""

    def next_behaviour(self, body: dict[str, Any]) -> Behaviour:
        if self.script:
            return self.script.pop(0)
        if body.get("tool_choice"):
            return Tool({"operations": [{"action": "NONE"}]})
        return Text(self.default_text)

    @property
    def answer_requests(self) -> list[dict[str, Any]]:
        """Requests that were answers (streamed), not tool calls."""
        return [r for r in self.requests if r.get("stream")]

    def prompt_text(self, index: int = -1) -> str:
        """Everything in an answer request's system blocks and messages, as one string."""
        request = self.answer_requests[index]
        system = " ".join(block["text"] for block in request.get("system", []))
        messages = " ".join(
            m["content"] if isinstance(m["content"], str) else json.dumps(m["content"])
            for m in request["messages"]
        )
        return system + "\n" + messages

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        return app

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.headers.append({k.lower(): v for k, v in request.headers.items()})
        behaviour = self.next_behaviour(body)
        if isinstance(behaviour, Hang):
            await asyncio.sleep(behaviour.seconds)
            behaviour = Text(self.default_text)
        if isinstance(behaviour, Fail):
            headers = {"retry-after": behaviour.retry_after} if behaviour.retry_after else None
            return web.json_response(
                {"type": "error", "error": {"type": behaviour.error_type, "message": "fake"}},
                status=behaviour.status,
                headers=headers,
            )
        if isinstance(behaviour, Tool):
            return web.json_response(_tool_message(body, behaviour))
        return await self._stream(request, body, behaviour)

    async def _stream(
        self, request: web.Request, body: dict[str, Any], behaviour: Text | StreamError
    ) -> web.StreamResponse:
        if isinstance(behaviour, Text) and behaviour.delay:
            await asyncio.sleep(behaviour.delay)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(event: str, data: dict[str, Any]) -> None:
            await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())

        await send("message_start", {"type": "message_start", "message": _message(body, [])})
        if isinstance(behaviour, StreamError):
            await send(
                "error",
                {"type": "error", "error": {"type": behaviour.error_type, "message": "fake"}},
            )
            await response.write_eof()
            return response
        await send(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        )
        await send("ping", {"type": "ping"})
        text = behaviour.text
        for start in range(0, len(text), behaviour.chunk):
            await send(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": text[start : start + behaviour.chunk]},
                },
            )
        await send("content_block_stop", {"type": "content_block_stop", "index": 0})
        await send(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": max(1, len(text) // 4)},
            },
        )
        await send("message_stop", {"type": "message_stop"})
        await response.write_eof()
        return response  # fmt: skip


def _message(body: dict[str, Any], content: list[dict[str, Any]]) -> dict[str, Any]:
    prompt_chars = len(json.dumps(body.get("system", ""))) + len(json.dumps(body["messages"]))
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": content,
        "stop_reason": "tool_use" if content else None,
        "stop_sequence": None,
        "usage": {
            "input_tokens": prompt_chars // 4,
            "output_tokens": 1,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 1200,
        },
    }


def _tool_message(body: dict[str, Any], behaviour: Tool) -> dict[str, Any]:
    name = body["tool_choice"]["name"]
    block = {"type": "tool_use", "id": "toolu_fake", "name": name, "input": behaviour.input}
    return _message(body, [block])
