"""The service's own measurements: the records of query_log, llm_call_metrics and rag_metrics
(written with a turn by storage/turns.py), LLM calls of other purposes, answer_feedback."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class QueryRecord:
    tenant_id: int
    user_id: int | None
    session_id: int | None
    platform: str
    channel_id: str | None
    in_channel: bool
    query_text: str
    answer_status: str
    grounded: bool
    chunk_ids: list[int]
    memory_ids: list[int]
    response_time_ms: int | None
    reference_id: str | None


@dataclass(frozen=True)
class LLMCallRecord:
    tenant_id: int
    purpose: str
    model: str
    status: str
    error_type: str | None = None
    attempts: int = 1
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    latency_ms: int | None = None
    time_to_first_token_ms: int | None = None
    cost_usd: float = 0.0
    query_id: int | None = None


@dataclass(frozen=True)
class RetrievalRecord:
    tenant_id: int
    embed_ms: float
    memory_search_ms: float | None
    chunk_search_ms: float
    memories_found: int
    chunks_found: int
    top_memory_score: float | None
    top_chunk_score: float | None
    query_id: int | None = None


async def log_llm_call(conn: asyncpg.Connection, c: LLMCallRecord) -> None:
    await conn.execute(
        """
        INSERT INTO llm_call_metrics (tenant_id, query_id, purpose, model, status, error_type,
                                      attempts, input_tokens, output_tokens, cache_read_tokens,
                                      cache_write_tokens, latency_ms, time_to_first_token_ms,
                                      cost_usd)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
        """,
        c.tenant_id, c.query_id, c.purpose, c.model, c.status, c.error_type, c.attempts,
        c.input_tokens, c.output_tokens, c.cache_read_tokens, c.cache_write_tokens,
        c.latency_ms, c.time_to_first_token_ms, c.cost_usd,
    )  # fmt: skip


async def record_feedback(
    conn: asyncpg.Connection, tenant_id: int, message_id: int, user_id: int | None, rating: int
) -> bool:
    """Store (or change) a user's 👍/👎 on an answer; False when the message is unknown."""
    stored = await conn.fetchval(
        """
        INSERT INTO answer_feedback (tenant_id, message_id, user_id, rating)
        SELECT $1, m.id, $3, $4 FROM session_messages m
        WHERE m.tenant_id = $1 AND m.id = $2 AND m.role = 'assistant'
        ON CONFLICT (message_id, user_id) DO UPDATE SET rating = EXCLUDED.rating,
                                                       created_at = now()
        RETURNING true
        """,
        tenant_id,
        message_id,
        user_id,
        rating,
    )
    return bool(stored)
