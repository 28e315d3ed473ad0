"""Teams conversation references and proactive deliveries (migration 0004)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

_CONVERSATION_COLUMNS = (
    "conversation_id, conversation_type, aad_tenant_id, team_id, service_url, reference"
)


@dataclass(frozen=True)
class TeamsConversation:
    """A conversation the bot has seen; `reference` is the SDK's ConversationReference as JSON."""

    conversation_id: str
    conversation_type: str
    aad_tenant_id: str
    team_id: str | None
    service_url: str
    reference: dict[str, Any]


@dataclass(frozen=True)
class TeamsDelivery:
    """Where a proactive post with an idempotency key landed."""

    conversation_id: str
    message_id: str
    thread: str | None


def _conversation(row: asyncpg.Record | None) -> TeamsConversation | None:
    return None if row is None else TeamsConversation(**dict(row))


async def remember_conversation(
    conn: asyncpg.Connection, tenant_id: int, conversation: TeamsConversation
) -> bool:
    """Store or refresh a conversation's reference; True when it was not known before.

    An unchanged reference is only touched once an hour: every message passes through here, and
    rewriting the same row each time would be write traffic for nothing."""
    inserted = await conn.fetchval(
        """
        INSERT INTO teams_conversations (tenant_id, conversation_id, conversation_type,
                                         aad_tenant_id, team_id, service_url, reference)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (tenant_id, conversation_id) DO UPDATE SET
            conversation_type = EXCLUDED.conversation_type,
            aad_tenant_id = EXCLUDED.aad_tenant_id,
            team_id = coalesce(EXCLUDED.team_id, teams_conversations.team_id),
            service_url = EXCLUDED.service_url,
            reference = EXCLUDED.reference,
            last_seen_at = now()
        WHERE teams_conversations.reference IS DISTINCT FROM EXCLUDED.reference
           OR teams_conversations.service_url IS DISTINCT FROM EXCLUDED.service_url
           OR teams_conversations.last_seen_at < now() - interval '1 hour'
        RETURNING xmax = 0
        """,
        tenant_id,
        conversation.conversation_id,
        conversation.conversation_type,
        conversation.aad_tenant_id,
        conversation.team_id,
        conversation.service_url,
        conversation.reference,
    )
    return bool(inserted)  # xmax = 0 only on a row this statement inserted


async def get_conversation(
    conn: asyncpg.Connection, tenant_id: int, conversation_id: str
) -> TeamsConversation | None:
    """The stored conversation with that id (a channel by its channel id), or None."""
    row = await conn.fetchrow(
        f"""
        SELECT {_CONVERSATION_COLUMNS} FROM teams_conversations
        WHERE tenant_id = $1 AND conversation_id = $2
        """,
        tenant_id,
        conversation_id,
    )
    return _conversation(row)


async def latest_conversation(conn: asyncpg.Connection, tenant_id: int) -> TeamsConversation | None:
    """The most recently seen conversation: its service URL, bot account and Azure AD tenant
    are how deskmate starts a post in a channel it has not seen a message from yet."""
    row = await conn.fetchrow(
        f"""
        SELECT {_CONVERSATION_COLUMNS} FROM teams_conversations
        WHERE tenant_id = $1
        ORDER BY last_seen_at DESC, id DESC
        LIMIT 1
        """,
        tenant_id,
    )
    return _conversation(row)


async def find_delivery(
    conn: asyncpg.Connection, tenant_id: int, idempotency_key: str
) -> TeamsDelivery | None:
    """The post an earlier attempt made with this idempotency key, if any."""
    row = await conn.fetchrow(
        """
        SELECT conversation_id, message_id, thread FROM teams_deliveries
        WHERE tenant_id = $1 AND idempotency_key = $2
        """,
        tenant_id,
        idempotency_key,
    )
    return None if row is None else TeamsDelivery(**dict(row))


async def record_delivery(
    conn: asyncpg.Connection, tenant_id: int, idempotency_key: str, delivery: TeamsDelivery
) -> None:
    """Remember where a keyed post landed; the first record of a key wins."""
    await conn.execute(
        """
        INSERT INTO teams_deliveries (tenant_id, idempotency_key, conversation_id, message_id,
                                      thread)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
        """,
        tenant_id,
        idempotency_key,
        delivery.conversation_id,
        delivery.message_id,
        delivery.thread,
    )
