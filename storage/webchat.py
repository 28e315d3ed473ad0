"""The local web chat's channel timelines, and today's direct-message turns of a web user."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import asyncpg

from storage.sessions import Message

WEB = "web"

# Every read of a post names its author, when a person wrote it.
_POST_SELECT = """
    SELECT p.id, p.channel, p.author_kind, p.user_id, u.email AS author_email,
           u.display_name AS author_name, p.content, p.payload, p.created_at
    FROM webchat_posts p LEFT JOIN users u ON u.id = p.user_id
"""


@dataclass(frozen=True)
class Post:
    """One message in a web channel; `payload` says how to show it (title, sources, buttons)."""

    id: int
    channel: str
    author_kind: str  # "user" or "bot"
    user_id: int | None
    author_email: str | None
    author_name: str | None
    content: str
    payload: dict[str, Any]
    created_at: dt.datetime


def _post(row: asyncpg.Record | None) -> Post | None:
    return None if row is None else Post(**dict(row))


async def add_post(
    conn: asyncpg.Connection,
    tenant_id: int,
    channel: str,
    *,
    author_kind: str,
    content: str,
    user_id: int | None = None,
    payload: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
) -> tuple[Post, bool]:
    """Store a post; returns it and whether it is new. With an idempotency key already used in
    the channel, the earlier post comes back unchanged (a retried delivery posts once)."""
    inserted = await conn.fetchval(
        """
        INSERT INTO webchat_posts (tenant_id, channel, author_kind, user_id, content, payload,
                                   idempotency_key)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (tenant_id, channel, idempotency_key) DO NOTHING
        RETURNING id
        """,
        tenant_id, channel, author_kind, user_id, content, payload or {}, idempotency_key,
    )  # fmt: skip
    if inserted is None:
        assert idempotency_key is not None  # without a key there is no conflict to skip
        post = await post_by_key(conn, tenant_id, channel, idempotency_key)
    else:
        post = _post(await conn.fetchrow(f"{_POST_SELECT} WHERE p.id = $1", inserted))
    assert post is not None
    return post, inserted is not None


async def post_by_key(
    conn: asyncpg.Connection, tenant_id: int, channel: str, idempotency_key: str
) -> Post | None:
    """The channel's post made with this idempotency key (one at most), if any."""
    row = await conn.fetchrow(
        f"{_POST_SELECT} WHERE p.tenant_id = $1 AND p.channel = $2 AND p.idempotency_key = $3",
        tenant_id, channel, idempotency_key,
    )  # fmt: skip
    return _post(row)


async def get_post(conn: asyncpg.Connection, tenant_id: int, post_id: int) -> Post | None:
    row = await conn.fetchrow(
        f"{_POST_SELECT} WHERE p.tenant_id = $1 AND p.id = $2", tenant_id, post_id
    )
    return _post(row)


async def update_post(
    conn: asyncpg.Connection,
    tenant_id: int,
    post_id: int,
    *,
    content: str,
    payload: dict[str, Any],
) -> Post | None:
    """Replace a post's content (e.g. an acknowledged alert); None when there is no such post.
    The post keeps the post it replies to: an edit does not move it out of its thread."""
    updated = await conn.fetchval(
        """
        UPDATE webchat_posts
        SET content = $3, updated_at = now(),
            payload = $4 || jsonb_build_object('reply_to', payload -> 'reply_to')
        WHERE tenant_id = $1 AND id = $2
        RETURNING id
        """,
        tenant_id, post_id, content, payload,
    )  # fmt: skip
    return None if updated is None else await get_post(conn, tenant_id, post_id)


async def recent_posts(
    conn: asyncpg.Connection, tenant_id: int, channel: str, *, limit: int
) -> list[Post]:
    """The channel's last `limit` posts, oldest first."""
    rows = await conn.fetch(
        f"""
        SELECT * FROM ({_POST_SELECT}
                       WHERE p.tenant_id = $1 AND p.channel = $2
                       ORDER BY p.id DESC LIMIT $3) AS latest
        ORDER BY id
        """,
        tenant_id, channel, limit,
    )  # fmt: skip
    return [p for p in map(_post, rows) if p is not None]


async def channels_with_posts(conn: asyncpg.Connection, tenant_id: int) -> list[str]:
    """Web channels something was posted into (e.g. a schedule's target without a clearance)."""
    rows = await conn.fetch(
        "SELECT DISTINCT channel FROM webchat_posts WHERE tenant_id = $1 ORDER BY channel",
        tenant_id,
    )
    return [r["channel"] for r in rows]


async def todays_turns(
    conn: asyncpg.Connection, tenant_id: int, user_id: int, conversation_key: str, day: dt.date
) -> list[Message]:
    """The messages of the user's web session in that conversation on that (local) day, oldest
    first; empty when there is no such session yet."""
    rows = await conn.fetch(
        """
        SELECT m.id, m.session_id, m.role, m.content, m.sequence_number, m.metadata, m.created_at
        FROM chat_sessions s JOIN session_messages m ON m.session_id = s.id
        WHERE s.tenant_id = $1 AND s.user_id = $2 AND s.platform = $3
          AND s.conversation_key = $4 AND s.scope_date = $5
        ORDER BY m.sequence_number
        """,
        tenant_id, user_id, WEB, conversation_key, day,
    )  # fmt: skip
    return [Message(**dict(r)) for r in rows]


# --- what another replica made, read by id ------------------------------------------------------


async def posts_after(
    conn: asyncpg.Connection, tenant_id: int, after: int, *, limit: int
) -> list[Post]:
    """The tenant's posts in every channel with an id above `after`, oldest first."""
    rows = await conn.fetch(
        f"{_POST_SELECT} WHERE p.tenant_id = $1 AND p.id > $2 ORDER BY p.id LIMIT $3",
        tenant_id, after, limit,
    )  # fmt: skip
    return [p for p in map(_post, rows) if p is not None]


async def latest_post_id(conn: asyncpg.Connection, tenant_id: int) -> int:
    """The tenant's newest post id (0 when there is none)."""
    newest = await conn.fetchval(
        "SELECT max(id) FROM webchat_posts WHERE tenant_id = $1", tenant_id
    )
    return int(newest or 0)


@dataclass(frozen=True)
class PrivateAnswer:
    """An answer only its asker sees: in their direct messages, or a command's reply in a
    channel. `question_ref` is the id the asker's page gave the question ("q-…" or "p12")."""

    id: int
    conversation: str  # the session's conversation: "dm:email" or "#channel"
    user_id: int
    email: str
    display_name: str
    content: str
    metadata: dict[str, Any]
    created_at: dt.datetime
    question_ref: str | None
    question: str | None
    asked_at: dt.datetime | None


# $1 tenant; $3 the question's platform message id, or NULL for the person's latest question
# before the answer.
_PRIVATE_ANSWER_SELECT = f"""
    SELECT a.id, s.conversation_key AS conversation, u.id AS user_id, u.email, u.display_name,
           a.content, a.metadata, a.created_at,
           q.platform_message_id AS question_ref, q.content AS question, q.created_at AS asked_at
    FROM session_messages a
    JOIN chat_sessions s ON s.id = a.session_id
    JOIN users u ON u.id = s.user_id
    LEFT JOIN LATERAL (
        SELECT m.platform_message_id, m.content, m.created_at FROM session_messages m
        WHERE m.session_id = a.session_id AND m.role = 'user'
          AND m.sequence_number < a.sequence_number
          AND ($3::text IS NULL OR m.platform_message_id = $3)
        ORDER BY m.sequence_number DESC LIMIT 1
    ) q ON true
    WHERE a.tenant_id = $1 AND a.role = 'assistant' AND s.platform = '{WEB}'
      AND (s.conversation_key LIKE 'dm:%' OR a.metadata ->> 'status' = 'command')
"""


async def private_answer(
    conn: asyncpg.Connection, tenant_id: int, message_id: int, question_ref: str | None
) -> PrivateAnswer | None:
    """The web answer stored as message `message_id`, if it is one only its asker sees."""
    row = await conn.fetchrow(
        f"{_PRIVATE_ANSWER_SELECT} AND a.id = $2", tenant_id, message_id, question_ref
    )
    return None if row is None else PrivateAnswer(**dict(row))


async def private_answers_after(
    conn: asyncpg.Connection, tenant_id: int, after: int, *, limit: int
) -> list[PrivateAnswer]:
    """The tenant's web answers only their askers see, with a message id above `after`."""
    rows = await conn.fetch(
        f"{_PRIVATE_ANSWER_SELECT} AND a.id > $2 ORDER BY a.id LIMIT $4",
        tenant_id, after, None, limit,
    )  # fmt: skip
    return [PrivateAnswer(**dict(r)) for r in rows]


async def latest_message_id(conn: asyncpg.Connection) -> int:
    """The newest session message id of any tenant (0 when there is none)."""
    return int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM session_messages"))
