"""Who is talking: a platform identity mapped to a directory user (SPEC §3)."""

from __future__ import annotations

import re

from bot import tenancy
from bot.errors import NotFound
from bot.messages import IncomingMessage, Profile
from storage import users
from storage.database import Database
from storage.tenants import DEFAULT_TENANT
from storage.users import Identity

__all__ = ["DEFAULT_TENANT", "Identity", "is_placeholder", "placeholder_email", "resolve_user"]

# RFC 2606 reserves `.invalid`: no real mailbox ends with it, so it marks made-up addresses.
PLACEHOLDER_DOMAIN_SUFFIX = ".invalid"


def placeholder_email(message: IncomingMessage) -> str:
    """A stable address for a person the platform gave no email for."""
    local = re.sub(r"[^a-z0-9._-]+", "-", message.user_id.lower()).strip("-") or "user"
    workspace = re.sub(r"[^a-z0-9-]+", "-", message.workspace_id.lower()).strip("-")
    suffix = PLACEHOLDER_DOMAIN_SUFFIX
    return f"{local}@{message.platform}{'-' + workspace if workspace else ''}{suffix}"


def is_placeholder(user: users.User) -> bool:
    """A person known only by a platform id: their profile was never read (first contact was a
    button click, or the platform did not answer), so they have public access only."""
    return user.email.endswith(PLACEHOLDER_DOMAIN_SUFFIX)


async def resolve_user(
    db: Database, message: IncomingMessage, default_timezone: str
) -> tuple[int, users.User]:
    """The tenant id and directory user behind a message: the one place a platform identity
    becomes a person, called once per message.

    Known identity → its user. Otherwise the platform's profile is asked for (only now, and
    only when the edge can), a user with that email is linked to this identity; failing that, a
    new user with public access only is created and linked. An identity linked to a placeholder
    counts as unknown until a profile with an email turns up: then it is re-linked to the user
    with that email, or the placeholder itself takes the email (keeping what it has)."""
    tenant_id = await tenancy.tenant_id(db, message.tenant)
    if message.trusted_email:
        async with db.pool.acquire() as conn:
            user = await users.get_by_email(conn, tenant_id, message.trusted_email)
        if user is None:
            raise NotFound(f"no user with email {message.trusted_email}")
        return tenant_id, user
    identity = Identity(message.platform, message.workspace_id, message.user_id)
    async with db.pool.acquire() as conn:
        user = await users.find_by_identity(conn, tenant_id, identity)
    if user is not None and not is_placeholder(user):
        return tenant_id, user
    profile = Profile(message.email, message.display_name)
    if profile.email is None and message.lookup_profile is not None:
        # Outside any transaction: this is a call to the platform.
        profile = await message.lookup_profile()
    if user is not None and not profile.email:
        return tenant_id, user  # still nothing better than the placeholder
    name = profile.display_name or message.display_name or message.user_id
    async with db.transaction() as conn:
        # Two first messages from one new person race here harmlessly: both find or create
        # the same user by email, and linking is idempotent.
        found = None
        if user is not None and profile.email:
            found = await users.take_email(conn, tenant_id, user, profile.email, name)
        if found is None:
            email = profile.email or placeholder_email(message)
            found = await users.create_if_missing(conn, tenant_id, email, name, default_timezone)
        await users.link_identity(conn, tenant_id, found.id, identity)
    return tenant_id, found
