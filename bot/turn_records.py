"""Writing down a finished turn: the reply in the session, and the service's measurements."""

from __future__ import annotations

import time
from typing import Any

from bot.llm import Completion, LLMError
from bot.llm_calls import completion_record
from bot.messages import ReplyStatus, Source
from bot.turns import Retrieved, Turn
from storage import measurements, turns
from storage.database import Database


async def record_turn(
    db: Database,
    model: str,
    turn: Turn,
    text: str,
    status: ReplyStatus,
    sources: tuple[Source, ...],
    found: Retrieved,
    completion: Completion | None,
    *,
    error: LLMError | None = None,
    reference: str | None = None,
) -> int:
    """Store the reply, its measurements and the memories it read in one statement; return the
    reply's message id.

    `model` names the language model of a failed call (a completion carries its own)."""
    elapsed_ms = int((time.perf_counter() - turn.started) * 1000)
    metadata: dict[str, Any] = {
        "status": status.value,
        "sources": [{"title": s.title, "section": s.section, "chunk_id": s.chunk_id}
                    for s in sources],
        "response_time_ms": elapsed_ms,
    }  # fmt: skip
    if completion is not None:
        metadata |= {
            "model": completion.model,
            "input_tokens": completion.usage.input_tokens,
            "output_tokens": completion.usage.output_tokens,
            "latency_ms": completion.latency_ms,
        }
    if reference:
        metadata["reference"] = reference
    llm_call = None
    if completion is not None or error is not None:
        llm_call = _llm_call(model, turn, completion, error)
    async with db.pool.acquire() as conn:
        return await turns.record_turn(
            conn, tenant_id=turn.tenant_id, session_id=turn.session_id, text=text,
            metadata=metadata, query=_query(turn, status, sources, found, elapsed_ms, reference),
            llm_call=llm_call, retrieval=_retrieval(turn, found) if found.record else None,
            memory_ids=[m.memory.id for m in found.memories],
        )  # fmt: skip


def _query(
    turn: Turn,
    status: ReplyStatus,
    sources: tuple[Source, ...],
    found: Retrieved,
    elapsed_ms: int,
    reference: str | None,
) -> measurements.QueryRecord:
    message = turn.message
    grounded = bool(sources) and status in (ReplyStatus.ANSWERED, ReplyStatus.OFFLINE)
    answer_status = status.value
    if status in (ReplyStatus.ANSWERED, ReplyStatus.OFFLINE) and not found.chunks:
        answer_status = "no_context"
    return measurements.QueryRecord(
        tenant_id=turn.tenant_id, user_id=turn.user.id, session_id=turn.session_id,
        platform=message.platform, channel_id=message.conversation_id,
        in_channel=not message.is_direct, query_text=message.text, answer_status=answer_status,
        grounded=grounded, chunk_ids=[c.chunk_id for c in found.chunks],
        memory_ids=[m.memory.id for m in found.memories], response_time_ms=elapsed_ms,
        reference_id=reference,
    )  # fmt: skip


def _llm_call(
    model: str,
    turn: Turn,
    completion: Completion | None,
    error: LLMError | None,
) -> measurements.LLMCallRecord:
    if completion is None:
        assert error is not None
        return measurements.LLMCallRecord(
            tenant_id=turn.tenant_id, purpose="answer", model=model,
            status="error", error_type=error.error_type, attempts=error.attempts,
        )  # fmt: skip
    return completion_record(turn.tenant_id, "answer", completion)


def _retrieval(turn: Turn, found: Retrieved) -> measurements.RetrievalRecord:
    record = found.record
    return measurements.RetrievalRecord(
        tenant_id=turn.tenant_id, embed_ms=float(record["embed_ms"] or 0),
        memory_search_ms=record["memory_search_ms"],
        chunk_search_ms=float(record["chunk_search_ms"] or 0),
        memories_found=len(found.memories), chunks_found=len(found.chunks),
        top_memory_score=record["top_memory_score"], top_chunk_score=record["top_chunk_score"],
    )  # fmt: skip
