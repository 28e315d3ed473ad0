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
