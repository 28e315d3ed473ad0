"""The `llm_call_metrics` row of a Claude call, for every purpose (answers, extraction, digests,
episodes), so cost and latency alerts see them all alike."""

from __future__ import annotations

from bot.llm import Completion
from storage import measurements


def completion_record(
    tenant_id: int, purpose: str, completion: Completion, *, query_id: int | None = None
) -> measurements.LLMCallRecord:
    """The `llm_call_metrics` row of a successful Claude call (answer, extraction, digest…)."""
    usage = completion.usage
    return measurements.LLMCallRecord(
        tenant_id=tenant_id, query_id=query_id, purpose=purpose, model=completion.model,
        status="ok", attempts=completion.attempts, input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens, cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens, latency_ms=completion.latency_ms,
        time_to_first_token_ms=completion.time_to_first_token_ms, cost_usd=completion.cost_usd,
    )  # fmt: skip
