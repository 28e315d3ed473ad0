"""What the admin console reads: questions, feedback and LLM use per day, the questions no
document could ground, the audit log and the directory's identities.

`departments` narrows to the people who read one of them (None: everyone); a question belongs
to a department through its asker, as query_log keeps no department of its own.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import asyncpg

# A question whose answer no document grounded: the retrieval found nothing to answer from, or
# an answer went out without a passage behind it. Commands and failures are not questions.
UNGROUNDED = """(q.answer_status = 'no_context'
                 OR (q.answer_status IN ('answered', 'offline') AND NOT q.grounded))"""

# $2 departments (NULL: all), $3 platform (NULL: all), $4 first day: shared by the day queries.
_ASKER_FILTER = """
    ($2::text[] IS NULL OR u.department_access && $2::text[])
    AND ($3::text IS NULL OR q.platform = $3)
"""


@dataclass(frozen=True)
class Day:
    """One day of the overview."""

    day: dt.date
    questions: int = 0
    answered: int = 0
    unanswered: int = 0
    failed: int = 0
    thumbs_up: int = 0
    thumbs_down: int = 0
    tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class Unanswered:
    query_id: int
    asked_at: dt.datetime
    platform: str
    question: str
    user_email: str | None
    user_name: str | None


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: dt.datetime
    actor: str
    action: str
    target_type: str
    target_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass(frozen=True)
class PersonIdentity:
    user_id: int
    platform: str
    workspace_id: str
    platform_user_id: str


async def days(
    conn: asyncpg.Connection,
    tenant_id: int,
    since: dt.date,
    departments: list[str] | None,
    platform: str | None,
) -> list[Day]:
    """Every day from `since` to today (UTC), empty days included, oldest first."""
    questions = await conn.fetch(
        f"""
        SELECT (q.created_at AT TIME ZONE 'UTC')::date AS day,
               count(*) AS questions,
               count(*) FILTER (WHERE q.answer_status IN ('answered', 'offline')
                                AND q.grounded) AS answered,
               count(*) FILTER (WHERE {UNGROUNDED}) AS unanswered,
               count(*) FILTER (WHERE q.answer_status = 'error') AS failed
        FROM query_log q LEFT JOIN users u ON u.id = q.user_id
        WHERE q.tenant_id = $1 AND q.answer_status <> 'command'
          AND q.created_at >= $4::date AND {_ASKER_FILTER}
        GROUP BY 1
        """,
        tenant_id, departments, platform, since,
    )  # fmt: skip
    feedback = await conn.fetch(
        f"""
        SELECT (f.created_at AT TIME ZONE 'UTC')::date AS day,
               count(*) FILTER (WHERE f.rating > 0) AS thumbs_up,
               count(*) FILTER (WHERE f.rating < 0) AS thumbs_down
        FROM answer_feedback f
        JOIN session_messages m ON m.id = f.message_id
        JOIN chat_sessions q ON q.id = m.session_id
        LEFT JOIN users u ON u.id = f.user_id
        WHERE f.tenant_id = $1 AND f.created_at >= $4::date AND {_ASKER_FILTER}
        GROUP BY 1
        """,
        tenant_id, departments, platform, since,
    )  # fmt: skip
    llm = await conn.fetch(
        f"""
        SELECT (c.created_at AT TIME ZONE 'UTC')::date AS day,
               sum(c.input_tokens + c.output_tokens + c.cache_read_tokens
                   + c.cache_write_tokens) AS tokens,
               sum(c.cost_usd)::float8 AS cost_usd
        FROM llm_call_metrics c
        LEFT JOIN query_log q ON q.id = c.query_id
        LEFT JOIN users u ON u.id = q.user_id
        WHERE c.tenant_id = $1 AND c.created_at >= $4::date
          AND (($2::text[] IS NULL AND $3::text IS NULL) OR (q.id IS NOT NULL AND {_ASKER_FILTER}))
        GROUP BY 1
        """,
        tenant_id, departments, platform, since,
    )  # fmt: skip
    today = await conn.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date")
    merged: dict[dt.date, dict[str, Any]] = {}
    for rows in (questions, feedback, llm):
        for row in rows:
            merged.setdefault(row["day"], {}).update(
                {k: v for k, v in dict(row).items() if k != "day" and v is not None}
            )
    span = max((today - since).days, 0)
    every = [since + dt.timedelta(days=n) for n in range(span + 1)]
    return [Day(day, **merged.get(day, {})) for day in every]


async def platforms(conn: asyncpg.Connection, tenant_id: int) -> list[str]:
    """The platforms questions came from, for the overview's filter."""
    rows = await conn.fetch(
        "SELECT DISTINCT platform FROM query_log WHERE tenant_id = $1 ORDER BY 1", tenant_id
    )
    return [r["platform"] for r in rows]


async def unanswered(
    conn: asyncpg.Connection,
    tenant_id: int,
    since: dt.date,
    departments: list[str] | None,
    limit: int = 500,
) -> list[Unanswered]:
    """The ungrounded questions since `since`, newest first."""
    rows = await conn.fetch(
        f"""
        SELECT q.id AS query_id, q.created_at AS asked_at, q.platform,
               q.query_text AS question, u.email AS user_email, u.display_name AS user_name
        FROM query_log q LEFT JOIN users u ON u.id = q.user_id
        WHERE q.tenant_id = $1 AND {UNGROUNDED} AND q.created_at >= $4::date
          AND {_ASKER_FILTER}
        ORDER BY q.created_at DESC, q.id DESC
        LIMIT $5
        """,
        tenant_id, departments, None, since, limit,
    )  # fmt: skip
    return [Unanswered(**dict(r)) for r in rows]


async def audit_entries(
    conn: asyncpg.Connection,
    tenant_id: int,
    action: str | None,
    actor: str | None,
    limit: int = 200,
) -> list[AuditEntry]:
    """The newest audit rows; `action` matches a prefix (`document.` or `document.delete`),
    `actor` a part of the actor, case-insensitively."""
    rows = await conn.fetch(
        """
        SELECT id, created_at AS at, actor, action, target_type, target_id, before, after
        FROM audit_log
        WHERE tenant_id = $1
          AND ($2::text IS NULL OR starts_with(action, $2))
          AND ($3::text IS NULL OR strpos(lower(actor), lower($3)) > 0)
        ORDER BY created_at DESC, id DESC
        LIMIT $4
        """,
        tenant_id,
        action,
        actor,
        limit,
    )
    return [AuditEntry(**dict(r)) for r in rows]


async def audit_actions(conn: asyncpg.Connection, tenant_id: int) -> list[str]:
    """The actions the audit log holds, for the filter."""
    rows = await conn.fetch(
        "SELECT DISTINCT action FROM audit_log WHERE tenant_id = $1 ORDER BY 1", tenant_id
    )
    return [r["action"] for r in rows]


async def identities(conn: asyncpg.Connection, tenant_id: int) -> list[PersonIdentity]:
    """Every platform identity of the tenant's people."""
    rows = await conn.fetch(
        """
        SELECT i.user_id, i.platform, i.workspace_id, i.platform_user_id
        FROM platform_identities i JOIN users u ON u.id = i.user_id
        WHERE u.tenant_id = $1
        ORDER BY i.user_id, i.platform, i.platform_user_id
        """,
        tenant_id,
    )
    return [PersonIdentity(**dict(r)) for r in rows]


async def first_super_user(conn: asyncpg.Connection, tenant_id: int) -> int | None:
    """The id of the longest-standing active super user, if any."""
    value = await conn.fetchval(
        "SELECT id FROM users WHERE tenant_id = $1 AND is_super_user AND is_active "
        "ORDER BY id LIMIT 1",
        tenant_id,
    )
    return int(value) if value is not None else None
