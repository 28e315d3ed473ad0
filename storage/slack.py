"""Slack OAuth installations and states (multi-workspace mode)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Installation:
    tenant_id: int
    enterprise_id: str
    team_id: str
    data: dict[str, Any]  # slack_sdk's Installation, serialised


async def save_installation(
    conn: asyncpg.Connection, tenant_id: int, enterprise_id: str, team_id: str,
    installer_user_id: str | None, is_enterprise_install: bool, bot_user_id: str | None,
    data: dict[str, Any],
) -> None:  # fmt: skip
    """Keep the latest installation of a workspace (a re-install replaces the tokens)."""
    await conn.execute(
        """
        INSERT INTO slack_installations (tenant_id, enterprise_id, team_id, installer_user_id,
                                         is_enterprise_install, bot_user_id, installation)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (enterprise_id, team_id) DO UPDATE SET
            installer_user_id = EXCLUDED.installer_user_id,
            is_enterprise_install = EXCLUDED.is_enterprise_install,
            bot_user_id = EXCLUDED.bot_user_id, installation = EXCLUDED.installation,
            installed_at = now()
        """,
        tenant_id, enterprise_id, team_id, installer_user_id, is_enterprise_install,
        bot_user_id, data,
    )  # fmt: skip


async def find_installation(
    conn: asyncpg.Connection, enterprise_id: str, team_id: str
) -> Installation | None:
    row = await conn.fetchrow(
        """
        SELECT tenant_id, enterprise_id, team_id, installation FROM slack_installations
        WHERE enterprise_id = $1 AND team_id = $2
        """,
        enterprise_id,
        team_id,
    )
    return Installation(row["tenant_id"], row["enterprise_id"], row["team_id"],
                        row["installation"]) if row else None  # fmt: skip


async def find_by_tenant(conn: asyncpg.Connection, tenant_id: int) -> Installation | None:
    row = await conn.fetchrow(
        """
        SELECT tenant_id, enterprise_id, team_id, installation FROM slack_installations
        WHERE tenant_id = $1 ORDER BY installed_at DESC LIMIT 1
        """,
        tenant_id,
    )
    return Installation(row["tenant_id"], row["enterprise_id"], row["team_id"],
                        row["installation"]) if row else None  # fmt: skip


async def delete_installation(conn: asyncpg.Connection, enterprise_id: str, team_id: str) -> bool:
    """Forget a workspace's tokens (uninstalled or revoked); its tenant's data stays."""
    deleted = await conn.fetchval(
        "DELETE FROM slack_installations WHERE enterprise_id = $1 AND team_id = $2 RETURNING true",
        enterprise_id,
        team_id,
    )
    return bool(deleted)


async def issue_state(conn: asyncpg.Connection, state: str, ttl_seconds: int) -> None:
    await conn.execute(
        """
        INSERT INTO slack_oauth_states (state, expires_at)
        VALUES ($1, now() + make_interval(secs => $2))
        """,
        state,
        ttl_seconds,
    )


async def consume_state(conn: asyncpg.Connection, state: str) -> bool:
    """True once for a state that was issued and has not expired."""
    used = await conn.fetchval(
        "DELETE FROM slack_oauth_states WHERE state = $1 AND expires_at > now() RETURNING true",
        state,
    )
    return bool(used)
