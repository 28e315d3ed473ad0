"""Directory administration: users, their identities and channel clearances, with an audit trail."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot import tenancy
from bot.errors import NotFound, UsageError
from bot.settings import is_timezone
from storage import audit, channels, users
from storage.database import Database

DEPARTMENT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PLATFORMS = ("slack", "teams", "web")


def parse_departments(text: str | None) -> list[str]:
    """`"Sales, hr"` → `["sales", "hr"]`; UsageError on a name that is not a department name."""
    if not text:
        return []
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    for name in names:
        if not DEPARTMENT_PATTERN.match(name):
            raise UsageError(
                f"bad department name {name!r}: use lowercase letters, digits, '-' or '_'"
            )
    return list(dict.fromkeys(names))


def check_email(email: str) -> str:
    email = email.strip().lower()
    if not EMAIL_PATTERN.match(email):
        raise UsageError(f"{email!r} is not an email address")
    return email


def check_platform(platform: str) -> str:
    if platform not in PLATFORMS:
        raise UsageError(f"unknown platform {platform!r}: use one of {', '.join(PLATFORMS)}")
    return platform


@dataclass(frozen=True)
class NewUser:
    email: str
    departments: list[str]
    head_of: list[str]
    is_super_user: bool = False
    display_name: str | None = None
    timezone: str | None = None
    slack_id: str | None = None
    teams_id: str | None = None


@dataclass(frozen=True)
class DirectoryEntry:
    user: users.User
    identities: list[users.Identity]


class Directory:
    """Admin actions on one database; every change is audited in the same transaction."""

    def __init__(self, db: Database, *, actor: str, default_timezone: str = "UTC") -> None:
        self.db = db
        self.actor = actor
        self.default_timezone = default_timezone

    async def add_user(self, tenant: str, new: NewUser) -> tuple[users.User, bool]:
        """Create or update a user; returns the user and whether it was created."""
        email = check_email(new.email)
        timezone = new.timezone or self.default_timezone
        if not is_timezone(timezone):
            raise UsageError(
                f"unknown time zone {timezone!r} (use an IANA name, e.g. Europe/Paris)"
            )
        # A department head reads their own department.
        access = list(dict.fromkeys([*new.departments, *new.head_of]))
        tenant_id = await tenancy.tenant_id(self.db, tenant)
        async with self.db.transaction() as conn:
            before = await users.get_by_email(conn, tenant_id, email)
            user = await users.upsert(
                conn,
                tenant_id=tenant_id,
                email=email,
                display_name=new.display_name or (before.display_name if before else _name(email)),
                timezone=timezone,
                department_access=access,
                dept_head_for=new.head_of,
                is_super_user=new.is_super_user,
            )
            for platform, platform_id in (("slack", new.slack_id), ("teams", new.teams_id)):
                if platform_id:
                    workspace, _, member = platform_id.rpartition(":")
                    await users.link_identity(
                        conn, tenant_id, user.id, users.Identity(platform, workspace, member)
                    )
            await audit.record(
                conn,
                tenant_id=tenant_id,
                actor=self.actor,
                action="user.update" if before else "user.add",
                target_type="user",
                target_id=email,
                before=before.as_dict() if before else None,
                after=user.as_dict(),
            )
        return user, before is None

    async def set_active(self, tenant: str, email: str, active: bool) -> users.User:
        email = check_email(email)
        tenant_id = await tenancy.tenant_id(self.db, tenant)
        async with self.db.transaction() as conn:
            before = await users.get_by_email(conn, tenant_id, email)
            user = await users.set_active(conn, tenant_id, email, active)
            if before is None or user is None:
                raise NotFound(f"no user with email {email}")
            await audit.record(
                conn,
                tenant_id=tenant_id,
                actor=self.actor,
                action="user.enable" if active else "user.disable",
                target_type="user",
                target_id=email,
                before=before.as_dict(),
                after=user.as_dict(),
            )
        return user

    async def list_users(self, tenant: str) -> list[DirectoryEntry]:
        tenant_id = await tenancy.tenant_id(self.db, tenant)
        async with self.db.pool.acquire() as conn:
            return [
                DirectoryEntry(user, await users.identities_of(conn, user.id))
                for user in await users.list_users(conn, tenant_id)
            ]

    async def map_channel(
        self, tenant: str, platform: str, channel_id: str, department: str
    ) -> bool:
        """Clear a channel for a department; False when it already was."""
        platform, channel_id, department = _clearance_of(platform, channel_id, department)
        clearance = channels.Clearance(platform, channel_id, department, self.actor)
        tenant_id = await tenancy.tenant_id(self.db, tenant)
        async with self.db.transaction() as conn:
            added = await channels.add_clearance(conn, tenant_id, clearance)
            if added:
                await audit.record(
                    conn,
                    tenant_id=tenant_id,
                    actor=self.actor,
                    action="channel.clear",
                    target_type="channel",
                    target_id=f"{platform}:{clearance.channel_id}",
                    before=None,
                    after={"department": department},
                )
        return added

    async def unmap_channel(
        self, tenant: str, platform: str, channel_id: str, department: str
    ) -> bool:
        """Withdraw a channel's clearance for a department; False when there was none."""
        platform, channel_id, department = _clearance_of(platform, channel_id, department)
        tenant_id = await tenancy.tenant_id(self.db, tenant)
        async with self.db.transaction() as conn:
            removed = await channels.remove_clearance(
                conn, tenant_id, platform, channel_id, department
            )
            if removed:
                await audit.record(
                    conn,
                    tenant_id=tenant_id,
                    actor=self.actor,
                    action="channel.unclear",
                    target_type="channel",
                    target_id=f"{platform}:{channel_id}",
                    before={"department": department},
                    after=None,
                )
        return removed

    async def list_channels(self, tenant: str, platform: str | None) -> list[channels.Clearance]:
        if platform is not None:
            check_platform(platform)
        tenant_id = await tenancy.tenant_id(self.db, tenant)
        async with self.db.pool.acquire() as conn:
            return await channels.list_clearances(conn, tenant_id, platform)


def _name(email: str) -> str:
    """A readable default display name from an email: `ana.lopez@x` → `Ana Lopez`."""
    local = email.split("@", 1)[0]
    return " ".join(part.capitalize() for part in re.split(r"[._-]+", local) if part) or email


def _clearance_of(platform: str, channel_id: str, department: str) -> tuple[str, str, str]:
    """A clearance's platform, channel and one department, checked as a person typed them."""
    names = parse_departments(department)
    if len(names) != 1:
        raise UsageError("give exactly one department, e.g. --department sales")
    if not channel_id.strip():
        raise UsageError("the channel id is empty")
    return check_platform(platform), channel_id.strip(), names[0]
