"""Daily chat sessions and their messages."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True)
class SessionKey:
    """What makes a session: this user, on this platform, in this conversation, on this day."""

    tenant_id: int
    user_id: int
    platform: str
    conversation_key: str
    scope_date: dt.date


@dataclass(frozen=True)
class Session:
    id: int
    key: SessionKey
    message_count: int


@dataclass(frozen=True)
class Message:
    id: int
    session_id: int
    role: str
    content: str
    sequence_number: int
    metadata: dict[str, Any]
    created_at: dt.datetime


async def open_and_append(
    conn: asyncpg.Connection,
    key: SessionKey,
    *,
    content: str,
    role: str = "user",
    metadata: dict[str, Any] | None = None,
    platform_message_id: str | None = None,
) -> Message:
    """Today's session for the key (created if missing) with a message appended (the person's,
    unless `role` says otherwise), in one statement: the upsert locks the session row, so
    concurrent first messages share one session and sequence numbers stay unique and without
    gaps.

    A message already in the session under the same `platform_message_id` and role is returned
    instead of appended again: a platform event answered a second time (its first attempt's
    replica died after storing it) leaves the question in the conversation once."""
    row = await conn.fetchrow(
        """
        WITH earlier AS (
            SELECT m.id, m.session_id, m.role, m.content, m.sequence_number, m.metadata,
                   m.created_at
            FROM chat_sessions s JOIN session_messages m ON m.session_id = s.id
            WHERE s.tenant_id = $1 AND s.user_id = $2 AND s.platform = $3
              AND s.conversation_key = $4 AND s.scope_date = $5
              AND m.platform_message_id = $8 AND m.role = $9
            LIMIT 1
        ), session AS (
            INSERT INTO chat_sessions AS s (tenant_id, user_id, platform, conversation_key,
                                            scope_date, message_count, last_message_at)
            SELECT $1, $2, $3, $4, $5, 1, now() WHERE NOT EXISTS (SELECT FROM earlier)
            ON CONFLICT (tenant_id, user_id, platform, conversation_key, scope_date)
            DO UPDATE SET message_count = s.message_count + 1, last_message_at = now()
            RETURNING id, message_count
        ), appended AS (
            INSERT INTO session_messages (tenant_id, session_id, role, content,
                                          sequence_number, metadata, platform_message_id)
            SELECT $1, session.id, $9, $6, session.message_count, $7, $8 FROM session
            RETURNING id, session_id, role, content, sequence_number, metadata, created_at
        )
        SELECT * FROM appended UNION ALL SELECT * FROM earlier
        """,
        key.tenant_id, key.user_id, key.platform, key.conversation_key, key.scope_date,
        content, metadata or {}, platform_message_id, role,
    )  # fmt: skip
    return Message(**dict(row))


async def history(
    conn: asyncpg.Connection, tenant_id: int, session_id: int, *, before_sequence: int
) -> list[Message]:
    """The session's messages before a given one, oldest first."""
    rows = await conn.fetch(
        """
        SELECT id, session_id, role, content, sequence_number, metadata, created_at
        FROM session_messages
        WHERE tenant_id = $1 AND session_id = $2 AND sequence_number < $3
        ORDER BY sequence_number
        """,
        tenant_id,
        session_id,
        before_sequence,
    )
    return [Message(**dict(r)) for r in rows]


async def set_platform_message_id(
    conn: asyncpg.Connection, tenant_id: int, message_id: int, platform_message_id: str
) -> None:
    """Remember where a reply was posted (for feedback buttons and edits)."""
    await conn.execute(
        "UPDATE session_messages SET platform_message_id = $3 WHERE tenant_id = $1 AND id = $2",
        tenant_id,
        message_id,
        platform_message_id,
    )


async def sessions_of_user(conn: asyncpg.Connection, tenant_id: int, user_id: int) -> list[Session]:
    """Every session of a user, oldest first."""
    rows = await conn.fetch(
        """
        SELECT id, tenant_id, user_id, platform, conversation_key, scope_date, message_count
        FROM chat_sessions WHERE tenant_id = $1 AND user_id = $2
        ORDER BY scope_date, id
        """,
        tenant_id,
        user_id,
    )
    return [
        Session(
            id=r["id"],
            key=SessionKey(
                r["tenant_id"], r["user_id"], r["platform"], r["conversation_key"], r["scope_date"]
            ),
            message_count=r["message_count"],
        )
        for r in rows
    ]


async def conversation_seen(
    conn: asyncpg.Connection, tenant_id: int, platform: str, conversation_key: str
) -> bool:
    """Whether deskmate has talked in this conversation (e.g. a thread it was mentioned in)."""
    return bool(
        await conn.fetchval(
            """
            SELECT EXISTS (SELECT 1 FROM chat_sessions
                           WHERE tenant_id = $1 AND platform = $2 AND conversation_key = $3)
            """,
            tenant_id,
            platform,
            conversation_key,
        )
    )
