"""Writing down a finished turn: the reply in the session, and the service's measurements."""

from __future__ import annotations

import time
from typing import Any

from bot.llm import Completion, LLMError
from bot.llm_calls import completion_record
from bot.messages import ReplyStatus, Source
from bot.turns import Retrieved, Turn
from storage import measurements, sessions
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
    """Store the reply and its measurements in one transaction; return the reply's message id.

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
    async with db.transaction() as conn:
        reply = await sessions.append(
            conn, tenant_id=turn.tenant_id, session_id=turn.session_id, role="assistant",
            content=text, metadata=metadata,
        )  # fmt: skip
        query_id = await measurements.log_query(conn, _query(turn, status, sources, found,
                                                             elapsed_ms, reference))  # fmt: skip
        if completion is not None or error is not None:
            await measurements.log_llm_call(conn, _llm_call(model, turn, query_id,
                                                            completion, error))  # fmt: skip
        if found.record:
            await measurements.log_retrieval(conn, _retrieval(turn, query_id, found))
    return reply.id


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
    query_id: int,
    completion: Completion | None,
    error: LLMError | None,
) -> measurements.LLMCallRecord:
    if completion is None:
        assert error is not None
        return measurements.LLMCallRecord(
            tenant_id=turn.tenant_id, query_id=query_id, purpose="answer", model=model,
            status="error", error_type=error.error_type, attempts=error.attempts,
        )  # fmt: skip
    return completion_record(turn.tenant_id, "answer", completion, query_id=query_id)


def _retrieval(turn: Turn, query_id: int, found: Retrieved) -> measurements.RetrievalRecord:
    record = found.record
    return measurements.RetrievalRecord(
        tenant_id=turn.tenant_id, query_id=query_id, embed_ms=float(record["embed_ms"] or 0),
        memory_search_ms=record["memory_search_ms"],
        chunk_search_ms=float(record["chunk_search_ms"] or 0),
        memories_found=len(found.memories), chunks_found=len(found.chunks),
        top_memory_score=record["top_memory_score"], top_chunk_score=record["top_chunk_score"],
    )  # fmt: skip
