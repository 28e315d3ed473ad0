"""A finished turn written down in one statement: the reply in its session, the query log, the
LLM call and retrieval measurements, and the memories it used counted as read.

One statement instead of a transaction of five: it is atomic on its own, and it is one round
trip on the answer path. The measurement rows are passed as JSON and read with
`jsonb_populate_record`, so their columns are named once, by the dataclasses in
storage/measurements.py.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import asyncpg

from storage.measurements import LLMCallRecord, QueryRecord, RetrievalRecord

# $1 tenant, $2 session, $3 reply text, $4 reply metadata, $5 query_log row, $6 llm_call_metrics
# row or NULL, $7 rag_metrics row or NULL, $8 ids of the memories the answer used.
_RECORD = """
WITH bumped AS (
    UPDATE chat_sessions
    SET message_count = message_count + 1, last_message_at = now()
    WHERE id = $2 AND tenant_id = $1
    RETURNING message_count
),
reply AS (
    INSERT INTO session_messages (tenant_id, session_id, role, content, sequence_number, metadata)
    SELECT $1, $2, 'assistant', $3, bumped.message_count, $4 FROM bumped
    RETURNING id
),
query AS (
    INSERT INTO query_log (tenant_id, user_id, session_id, platform, channel_id, in_channel,
                           query_text, answer_status, grounded, chunk_ids, memory_ids,
                           response_time_ms, reference_id)
    SELECT tenant_id, user_id, session_id, platform, channel_id, in_channel, query_text,
           answer_status, grounded, chunk_ids, memory_ids, response_time_ms, reference_id
    FROM jsonb_populate_record(NULL::query_log, $5)
    RETURNING id
),
llm AS (
    INSERT INTO llm_call_metrics (tenant_id, query_id, purpose, model, status, error_type,
                                  attempts, input_tokens, output_tokens, cache_read_tokens,
                                  cache_write_tokens, latency_ms, time_to_first_token_ms,
                                  cost_usd)
    SELECT r.tenant_id, query.id, r.purpose, r.model, r.status, r.error_type, r.attempts,
           r.input_tokens, r.output_tokens, r.cache_read_tokens, r.cache_write_tokens,
           r.latency_ms, r.time_to_first_token_ms, r.cost_usd
    FROM jsonb_populate_record(NULL::llm_call_metrics, $6) r, query
    WHERE $6 IS NOT NULL
),
retrieval AS (
    INSERT INTO rag_metrics (tenant_id, query_id, embed_ms, memory_search_ms, chunk_search_ms,
                             memories_found, chunks_found, top_memory_score, top_chunk_score)
    SELECT r.tenant_id, query.id, r.embed_ms, r.memory_search_ms, r.chunk_search_ms,
           r.memories_found, r.chunks_found, r.top_memory_score, r.top_chunk_score
    FROM jsonb_populate_record(NULL::rag_metrics, $7) r, query
    WHERE $7 IS NOT NULL
),
touched AS (
    INSERT INTO memory_reads AS r (memory_id, tenant_id, read_count, last_read_at)
    SELECT m.id, $1, 1, now() FROM memories m WHERE m.tenant_id = $1 AND m.id = ANY ($8::bigint[])
    ON CONFLICT (memory_id) DO UPDATE SET read_count = r.read_count + 1, last_read_at = now()
)
SELECT reply.id AS message_id, query.id AS query_id FROM reply, query
"""


def _row(record: Any) -> dict[str, Any] | None:
    return None if record is None else asdict(record)


async def record_turn(
    conn: asyncpg.Connection,
    *,
    tenant_id: int,
    session_id: int,
    text: str,
    metadata: dict[str, Any],
    query: QueryRecord,
    llm_call: LLMCallRecord | None,
    retrieval: RetrievalRecord | None,
    memory_ids: list[int],
) -> int:
    """Store the reply and its measurements; returns the reply's message id. LookupError when
    the session does not exist."""
    row = await conn.fetchrow(
        _RECORD, tenant_id, session_id, text, metadata, asdict(query), _row(llm_call),
        _row(retrieval), memory_ids,
    )  # fmt: skip
    if row is None:
        raise LookupError(f"session {session_id} does not exist")
    return int(row["message_id"])
