"""Who is talking: a platform identity mapped to a directory user (SPEC §3)."""

from __future__ import annotations

import re

from bot import tenancy
from bot.errors import NotFound
from bot.messages import IncomingMessage
from storage import users
from storage.tenants import DEFAULT_TENANT
from storage.users import Identity

__all__ = ["DEFAULT_TENANT", "Identity", "is_known", "placeholder_email", "resolve_user"]
from storage.database import Database


def placeholder_email(message: IncomingMessage) -> str:
    """A stable address for a person the platform gave no email for."""
    local = re.sub(r"[^a-z0-9._-]+", "-", message.user_id.lower()).strip("-") or "user"
    workspace = re.sub(r"[^a-z0-9-]+", "-", message.workspace_id.lower()).strip("-")
    return f"{local}@{message.platform}{'-' + workspace if workspace else ''}.invalid"


async def resolve_user(
    db: Database, message: IncomingMessage, default_timezone: str
) -> tuple[int, users.User]:
    """The tenant id and directory user behind a message.

    Known identity → its user. Otherwise a user with the platform's email is linked to this
    identity; failing that, a new user with public access only is created and linked."""
    tenant_id = await tenancy.tenant_id(db, message.tenant)
    async with db.transaction() as conn:
        if message.trusted_email:
            user = await users.get_by_email(conn, tenant_id, message.trusted_email)
            if user is None:
                raise NotFound(f"no user with email {message.trusted_email}")
            return tenant_id, user
        identity = Identity(message.platform, message.workspace_id, message.user_id)
        user = await users.find_by_identity(conn, tenant_id, identity)
        if user is not None:
            return tenant_id, user
        user = await users.create_if_missing(
            conn,
            tenant_id,
            message.email or placeholder_email(message),
            message.display_name or message.user_id,
            default_timezone,
        )
        await users.link_identity(conn, tenant_id, user.id, identity)
        return tenant_id, user


async def is_known(db: Database, tenant: str, identity: Identity) -> bool:
    """Whether a platform identity already maps to a directory user (no platform lookup needed)."""
    tenant_id = await tenancy.tenant_id(db, tenant)
    async with db.pool.acquire() as conn:
        return await users.find_by_identity(conn, tenant_id, identity) is not None
