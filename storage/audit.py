"""The audit log: who changed what in the directory, clearances, documents, schedules, alerts."""

from __future__ import annotations

from typing import Any

import asyncpg


async def record(
    conn: asyncpg.Connection,
    *,
    tenant_id: int,
    actor: str,
    action: str,
    target_type: str,
    target_id: str | None,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """Append one admin action; call it inside the transaction that made the change."""
    await conn.execute(
        """
        INSERT INTO audit_log (tenant_id, actor, action, target_type, target_id, before, after)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        """,
        tenant_id,
        actor,
        action,
        target_type,
        target_id,
        before,
        after,
    )
