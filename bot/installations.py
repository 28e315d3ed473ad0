"""Workspaces that installed deskmate through a platform's OAuth flow: one tenant each."""

from __future__ import annotations

import re
import secrets
from typing import Any

from bot import tenancy
from storage import slack, tenants
from storage.database import Database

STATE_TTL_SECONDS = 600


def workspace_tenant(platform: str, workspace_id: str) -> str:
    """The tenant slug of an installed workspace: `slack-t0123`."""
    return f"{platform}-" + re.sub(r"[^a-z0-9]+", "-", workspace_id.lower()).strip("-")


class SlackInstallations:
    """Saving, finding and deleting Slack installations; the first save creates the tenant."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def save(self, enterprise_id: str, team_id: str, team_name: str, data: dict[str, Any],
                   *, installer: str | None, enterprise_install: bool,
                   bot_user_id: str | None) -> str:  # fmt: skip
        """Store the installation; returns its tenant slug."""
        slug = workspace_tenant("slack", team_id or enterprise_id)
        async with self.db.transaction() as conn:
            tenant = await tenants.ensure_tenant(conn, slug, team_name or slug)
            await slack.save_installation(conn, tenant.id, enterprise_id, team_id, installer,
                                          enterprise_install, bot_user_id, data)  # fmt: skip
        return slug

    async def find(self, enterprise_id: str, team_id: str) -> dict[str, Any] | None:
        async with self.db.pool.acquire() as conn:
            found = await slack.find_installation(conn, enterprise_id, team_id)
        return found.data if found else None

    async def find_for_tenant(self, tenant: str) -> dict[str, Any] | None:
        tenant_id = await tenancy.tenant_id(self.db, tenant)
        async with self.db.pool.acquire() as conn:
            found = await slack.find_by_tenant(conn, tenant_id)
        return found.data if found else None

    async def delete(self, enterprise_id: str, team_id: str) -> bool:
        async with self.db.pool.acquire() as conn:
            return await slack.delete_installation(conn, enterprise_id, team_id)

    async def issue_state(self) -> str:
        state = secrets.token_urlsafe(24)
        async with self.db.pool.acquire() as conn:
            await slack.issue_state(conn, state, STATE_TTL_SECONDS)
        return state

    async def consume_state(self, state: str) -> bool:
        async with self.db.pool.acquire() as conn:
            return await slack.consume_state(conn, state)
