"""What summaries read: a period's activity for digests, and past sessions for episode memories.

A digest's scope is a department (questions from its members or in channels cleared for it;
everyone's for a public department) or one channel (questions asked there).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import asyncpg

logger = logging.getLogger("deskmate.storage.digests")


@dataclass(frozen=True)
class Question:
    id: int
    text: str
    answer_status: str
    grounded: bool
    user_id: int | None
    top_document: str | None  # title of the best passage retrieved for it, if any
    created_at: dt.datetime

    @property
    def ungrounded(self) -> bool:
        """Answered (or attempted) without any document to stand on."""
        return self.answer_status == "no_context" or (
            not self.grounded and self.answer_status in ("answered", "offline")
        )


@dataclass(frozen=True)
class DocumentChange:
    title: str
    department: str
    change: str  # added / changed / removed
    at: dt.datetime


@dataclass(frozen=True)
class AlertEvent:
    rule: str
    severity: str
    state: str
    started_at: dt.datetime
    resolved_at: dt.datetime | None
    value: float | None
    threshold: float | None


@dataclass(frozen=True)
class Usage:
    model_calls: int
    tokens: int
    cost_usd: float


@dataclass(frozen=True)
class PastSession:
    id: int
    tenant_id: int
    user_id: int
    platform: str
    conversation_key: str
    scope_date: dt.date


async def questions(
    conn: asyncpg.Connection,
    tenant_id: int,
    *,
    scope: str,
    name: str,
    platform: str,
    start: dt.datetime,
    end: dt.datetime,
    public_departments: list[str],
) -> list[Question]:
    """Questions (not commands) asked in [start, end) within the scope, oldest first.

    $4 is the scope kind ('department' / 'channel'), $5 the department or channel id, $6 the
    channel's platform, $7 the public departments."""
    rows = await conn.fetch(
        """
        SELECT q.id, q.query_text AS text, q.answer_status, q.grounded, q.user_id, q.created_at,
               (SELECT d.title FROM document_chunks c JOIN documents d ON d.id = c.document_id
                WHERE c.id = q.chunk_ids[1]) AS top_document
        FROM query_log q LEFT JOIN users u ON u.id = q.user_id
        WHERE q.tenant_id = $1 AND q.created_at >= $2 AND q.created_at < $3
          AND q.answer_status <> 'command'
          AND CASE WHEN $4::text = 'channel'
                   THEN q.in_channel AND q.platform = $6 AND q.channel_id = $5
                   ELSE $5 = ANY($7::text[]) OR $5 = ANY(u.department_access)
                        OR $5 = ANY(u.dept_head_for)
                        OR (q.in_channel AND EXISTS (
                            SELECT 1 FROM channel_clearances cc
                            WHERE cc.tenant_id = q.tenant_id AND cc.platform = q.platform
                              AND cc.channel_id = q.channel_id AND cc.department = $5))
              END
        ORDER BY q.created_at, q.id
        """,
        tenant_id, start, end, scope, name, platform, public_departments,
    )  # fmt: skip
    return [Question(**dict(r)) for r in rows]


async def channel_departments(
    conn: asyncpg.Connection, tenant_id: int, platform: str, channel: str
) -> list[str]:
    """The departments a channel is cleared for."""
    rows = await conn.fetch(
        """
        SELECT department FROM channel_clearances
        WHERE tenant_id = $1 AND platform = $2 AND channel_id = $3 ORDER BY department
        """,
        tenant_id,
        platform,
        channel,
    )
    return [r["department"] for r in rows]


async def document_changes(
    conn: asyncpg.Connection,
    tenant_id: int,
    departments: list[str],
    start: dt.datetime,
    end: dt.datetime,
) -> list[DocumentChange]:
    """Documents of these departments added, changed or removed in [start, end)."""
    rows = await conn.fetch(
        """
        SELECT title, department,
               CASE WHEN NOT is_active THEN 'removed'
                    WHEN created_at >= $3 THEN 'added' ELSE 'changed' END AS change,
               greatest(created_at, updated_at) AS at
        FROM documents
        WHERE tenant_id = $1 AND (status = 'ready' OR NOT is_active)
          AND (department = ANY($2::text[]) OR department_access && $2::text[])
          AND ((created_at >= $3 AND created_at < $4) OR (updated_at >= $3 AND updated_at < $4))
        ORDER BY at, id
        """,
        tenant_id,
        departments,
        start,
        end,
    )
    return [DocumentChange(**dict(r)) for r in rows]


async def alerts_in_period(
    conn: asyncpg.Connection, tenant_id: int, start: dt.datetime, end: dt.datetime
) -> list[AlertEvent]:
    """Alert instances that fired or resolved in [start, end); [] until the alert tables exist.

    Reads `alert_instances` (rule_id, tenant_id, state, started_at, resolved_at, metric_value,
    threshold) joined to `alert_rules` (name, severity): the alerts migration keeps those names."""
    present = await conn.fetchval(
        "SELECT to_regclass('alert_instances') IS NOT NULL "
        "AND to_regclass('alert_rules') IS NOT NULL"
    )
    if not present:
        return []
    try:
        rows = await conn.fetch(
            """
            SELECT r.name AS rule, r.severity, i.state, i.started_at, i.resolved_at,
                   i.metric_value::float8 AS value, i.threshold::float8 AS threshold
            FROM alert_instances i JOIN alert_rules r ON r.id = i.rule_id
            WHERE i.tenant_id = $1 AND i.state <> 'pending'
              AND ((i.started_at >= $2 AND i.started_at < $3)
                   OR (i.resolved_at >= $2 AND i.resolved_at < $3))
            ORDER BY i.started_at, i.id
            """,
            tenant_id,
            start,
            end,
        )
    except asyncpg.UndefinedColumnError as exc:
        # A digest must not fail because the alerts schema moved on; the log says so.
        logger.warning("digest: the alert tables do not have the expected columns: %s", exc)
        return []
    return [AlertEvent(**dict(r)) for r in rows]


async def usage(conn: asyncpg.Connection, tenant_id: int, query_ids: list[int]) -> Usage:
    """Model calls, tokens and cost of answering these questions."""
    row = await conn.fetchrow(
        """
        SELECT count(*) AS model_calls,
               coalesce(sum(input_tokens + output_tokens + cache_read_tokens
                            + cache_write_tokens), 0) AS tokens,
               coalesce(sum(cost_usd), 0)::float8 AS cost_usd
        FROM llm_call_metrics WHERE tenant_id = $1 AND query_id = ANY($2::bigint[])
        """,
        tenant_id,
        query_ids,
    )
    return Usage(**dict(row))


# --- nightly episodes --------------------------------------------------------------------------


async def lock_past_session(
    conn: asyncpg.Connection, now: dt.datetime | None = None
) -> PastSession | None:
    """One session of a past (user-local) day not summarised yet, locked until the caller's
    transaction ends. SKIP LOCKED: replicas running the nightly job at once take different
    sessions, and the lock plus the status check make each session summarised once."""
    row = await conn.fetchrow(
        """
        SELECT s.id, s.tenant_id, s.user_id, s.platform, s.conversation_key, s.scope_date
        FROM chat_sessions s JOIN users u ON u.id = s.user_id
        WHERE s.status <> 'summarised' AND s.message_count > 0
          AND s.scope_date < (coalesce($1::timestamptz, now()) AT TIME ZONE u.timezone)::date
        ORDER BY s.scope_date, s.id
        LIMIT 1
        FOR UPDATE OF s SKIP LOCKED
        """,
        now,
    )
    return None if row is None else PastSession(**dict(row))


async def mark_summarised(conn: asyncpg.Connection, session_id: int) -> None:
    await conn.execute(
        """
        UPDATE chat_sessions SET status = 'summarised', ended_at = coalesce(ended_at, now())
        WHERE id = $1
        """,
        session_id,
    )
