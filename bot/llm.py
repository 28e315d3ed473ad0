"""Claude through `anthropic.AsyncAnthropic`: streamed answers and tool calls, retried with
backoff and jitter, measured (tokens, cache, latency, time to first token, cost).

Anthropic exceptions stop here: callers see `LLMError`, whose message never contains the key.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anthropic
from anthropic.types import MessageParam, TextBlockParam, ToolParam, ToolUseBlock

from bot import metrics
from bot.errors import DeskmateError
from bot.retry import retry_after_seconds
from bot.settings import Settings

DeltaCallback = Callable[[str], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]

# USD per million tokens: input, output, cache write (5 min), cache read.
_PRICES = {
    "opus": (5.0, 25.0, 6.25, 0.50),
    "sonnet": (3.0, 15.0, 3.75, 0.30),
    "haiku": (1.0, 5.0, 1.25, 0.10),
}


class LLMError(DeskmateError):
    """Claude could not answer, after the retries that made sense."""

    http_status = 502

    def __init__(self, message: str, *, error_type: str, attempts: int) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.attempts = attempts


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    usage: Usage
    latency_ms: int
    time_to_first_token_ms: int | None
    attempts: int
    stop_reason: str | None
    tool_input: dict[str, Any] | None = None

    @property
    def cost_usd(self) -> float:
        return estimate_cost(self.model, self.usage)


def estimate_cost(model: str, usage: Usage) -> float:
    """An estimate from list prices; unknown models are priced like Sonnet."""
    family = next((name for name in _PRICES if name in model), "sonnet")
    price_in, price_out, price_write, price_read = _PRICES[family]
    return (
        usage.input_tokens * price_in
        + usage.output_tokens * price_out
        + usage.cache_write_tokens * price_write
        + usage.cache_read_tokens * price_read
    ) / 1_000_000


def _is_transient(exc: Exception) -> bool:
    """429, 5xx, 529 overloaded, timeouts and dropped connections are worth another try."""
    if isinstance(exc, anthropic.APITimeoutError | anthropic.APIConnectionError):
        return True
    if isinstance(exc, anthropic.RateLimitError | anthropic.InternalServerError):
        return True
    if isinstance(exc, anthropic.APIStatusError):
        # An error event inside a 200 SSE stream arrives with the stream's status code.
        body = exc.body if isinstance(exc.body, dict) else {}
        kind = (
            (body.get("error") or {}).get("type") if isinstance(body.get("error"), dict) else None
        )
        return exc.status_code >= 500 or kind in {
            "overloaded_error",
            "api_error",
            "rate_limit_error",
        }
    return False


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    return retry_after_seconds(
        response.headers.get("retry-after") if response is not None else None
    )


class Claude:
    """One Anthropic client for the process; `stream()` for answers, `call_tool()` for JSON."""

    def __init__(
        self,
        settings: Settings,
        *,
        max_attempts: int = 4,
        base_delay: float = 0.5,
        max_delay: float = 8.0,
        timeout: float = 60.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        assert settings.anthropic_api_key is not None, "Claude needs ANTHROPIC_API_KEY"
        self.model = settings.anthropic_model
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._sleep = sleep
        # The SDK's own retries are off: ours know whether text was already streamed.
        self._client = anthropic.AsyncAnthropic(
            api_key=settings.anthropic_api_key.get_secret_value(),
            base_url=settings.anthropic_base_url,
            max_retries=0,
            timeout=timeout,
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def stream(
        self,
        *,
        system: list[TextBlockParam],
        messages: list[MessageParam],
        max_tokens: int = 1500,
        on_delta: DeltaCallback | None = None,
    ) -> Completion:
        """Stream an answer, calling `on_delta` with each piece of text as it arrives."""
        return await self._with_retries(
            lambda emitted: self._stream_once(system, messages, max_tokens, on_delta, emitted)
        )

    async def call_tool(
        self,
        *,
        system: list[TextBlockParam],
        messages: list[MessageParam],
        tool: ToolParam,
        max_tokens: int = 1000,
    ) -> Completion:
        """Make Claude answer by calling `tool`; the completion carries the tool's input."""

        async def once(emitted: list[bool]) -> Completion:
            started = time.perf_counter()
            message = await self._client.messages.create(
                model=self.model, max_tokens=max_tokens, system=system, messages=messages,
                tools=[tool], tool_choice={"type": "tool", "name": tool["name"]},
            )  # fmt: skip
            tool_input = next(
                (b.input for b in message.content if isinstance(b, ToolUseBlock)), None
            )
            return Completion(
                text="", model=message.model, usage=_usage(message.usage),
                latency_ms=int((time.perf_counter() - started) * 1000),
                time_to_first_token_ms=None, attempts=1, stop_reason=message.stop_reason,
                tool_input=dict(tool_input) if isinstance(tool_input, dict) else None,
            )  # fmt: skip

        return await self._with_retries(once)

    async def _stream_once(
        self,
        system: list[TextBlockParam],
        messages: list[MessageParam],
        max_tokens: int,
        on_delta: DeltaCallback | None,
        emitted: list[bool],
    ) -> Completion:
        started = time.perf_counter()
        first_token: float | None = None
        parts: list[str] = []
        async with self._client.messages.stream(
            model=self.model, max_tokens=max_tokens, system=system, messages=messages
        ) as stream:
            async for text in stream.text_stream:
                if first_token is None:
                    first_token = time.perf_counter()
                parts.append(text)
                emitted[0] = True
                if on_delta is not None:
                    await on_delta(text)
            final = await stream.get_final_message()
        return Completion(
            text="".join(parts), model=final.model, usage=_usage(final.usage),
            latency_ms=int((time.perf_counter() - started) * 1000),
            time_to_first_token_ms=(
                int((first_token - started) * 1000) if first_token is not None else None
            ),
            attempts=1, stop_reason=final.stop_reason,
        )  # fmt: skip

    async def _with_retries(
        self, attempt: Callable[[list[bool]], Awaitable[Completion]]
    ) -> Completion:
        started = time.perf_counter()
        try:
            completion = await self._attempts(attempt)
        except LLMError:
            metrics.observe_llm_call(self.model, None, time.perf_counter() - started)
            raise
        metrics.observe_llm_call(self.model, completion, time.perf_counter() - started)
        return completion

    async def _attempts(self, attempt: Callable[[list[bool]], Awaitable[Completion]]) -> Completion:
        for number in range(1, self.max_attempts + 1):
            emitted = [False]
            try:
                completion = await attempt(emitted)
            except anthropic.APIError as exc:
                metrics.LLM_ERRORS.labels(kind=type(exc).__name__).inc()
                # Text already shown to the user cannot be taken back: no retry after it.
                if not _is_transient(exc) or emitted[0] or number == self.max_attempts:
                    raise LLMError(
                        f"Claude did not answer ({type(exc).__name__})",
                        error_type=type(exc).__name__,
                        attempts=number,
                    ) from exc
                await self._sleep(self._delay(number, _retry_after(exc)))
                continue
            return _with_attempts(completion, number)
        raise AssertionError("unreachable")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with full jitter, never shorter than the server's Retry-After."""
        backoff = random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
        return max(backoff, min(retry_after or 0.0, self.max_delay * 4))


def _usage(usage: Any) -> Usage:
    return Usage(
        input_tokens=getattr(usage, "input_tokens", 0) or 0,
        output_tokens=getattr(usage, "output_tokens", 0) or 0,
        cache_read_tokens=getattr(usage, "cache_read_input_tokens", 0) or 0,
        cache_write_tokens=getattr(usage, "cache_creation_input_tokens", 0) or 0,
    )


def _with_attempts(completion: Completion, attempts: int) -> Completion:
    from dataclasses import replace

    return replace(completion, attempts=attempts)
