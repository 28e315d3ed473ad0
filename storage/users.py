"""The directory: users and their platform identities."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import asyncpg

_FIELDS = (
    "id",
    "tenant_id",
    "email",
    "display_name",
    "timezone",
    "department_access",
    "dept_head_for",
    "is_super_user",
    "is_active",
)
_USER_COLUMNS = ", ".join(_FIELDS)
_JOINED_USER_COLUMNS = ", ".join(f"u.{name}" for name in _FIELDS)


@dataclass(frozen=True)
class User:
    id: int
    tenant_id: int
    email: str
    display_name: str
    timezone: str
    department_access: tuple[str, ...]
    dept_head_for: tuple[str, ...]
    is_super_user: bool
    is_active: bool

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["department_access"] = list(self.department_access)
        data["dept_head_for"] = list(self.dept_head_for)
        return data


@dataclass(frozen=True)
class Identity:
    platform: str
    workspace_id: str
    platform_user_id: str


def _user(row: asyncpg.Record | None) -> User | None:
    if row is None:
        return None
    data = dict(row)
    data["department_access"] = tuple(data["department_access"])
    data["dept_head_for"] = tuple(data["dept_head_for"])
    return User(**data)


async def get_by_email(conn: asyncpg.Connection, tenant_id: int, email: str) -> User | None:
    row = await conn.fetchrow(
        f"SELECT {_USER_COLUMNS} FROM users WHERE tenant_id = $1 AND email = $2",
        tenant_id,
        email.lower(),
    )
    return _user(row)


async def get_by_id(conn: asyncpg.Connection, tenant_id: int, user_id: int) -> User | None:
    row = await conn.fetchrow(
        f"SELECT {_USER_COLUMNS} FROM users WHERE tenant_id = $1 AND id = $2", tenant_id, user_id
    )
    return _user(row)


async def upsert(
    conn: asyncpg.Connection,
    *,
    tenant_id: int,
    email: str,
    display_name: str,
    timezone: str,
    department_access: list[str],
    dept_head_for: list[str],
    is_super_user: bool,
) -> User:
    """Create the user, or update every field of the existing user with that email."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO users (tenant_id, email, display_name, timezone, department_access,
                           dept_head_for, is_super_user)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (tenant_id, email) DO UPDATE SET
            display_name = EXCLUDED.display_name,
            timezone = EXCLUDED.timezone,
            department_access = EXCLUDED.department_access,
            dept_head_for = EXCLUDED.dept_head_for,
            is_super_user = EXCLUDED.is_super_user,
            is_active = true,
            updated_at = now()
        RETURNING {_USER_COLUMNS}
        """,
        tenant_id,
        email.lower(),
        display_name,
        timezone,
        department_access,
        dept_head_for,
        is_super_user,
    )
    user = _user(row)
    assert user is not None
    return user


async def set_active(
    conn: asyncpg.Connection, tenant_id: int, email: str, active: bool
) -> User | None:
    """Enable or disable a user; None when no such user."""
    row = await conn.fetchrow(
        f"""
        UPDATE users SET is_active = $3, updated_at = now()
        WHERE tenant_id = $1 AND email = $2
        RETURNING {_USER_COLUMNS}
        """,
        tenant_id,
        email.lower(),
        active,
    )
    return _user(row)


async def list_users(conn: asyncpg.Connection, tenant_id: int) -> list[User]:
    rows = await conn.fetch(
        f"SELECT {_USER_COLUMNS} FROM users WHERE tenant_id = $1 ORDER BY email", tenant_id
    )
    return [u for u in map(_user, rows) if u is not None]


async def link_identity(
    conn: asyncpg.Connection, tenant_id: int, user_id: int, identity: Identity
) -> None:
    """Map a platform identity to the user (moving it if it pointed at someone else)."""
    await conn.execute(
        """
        INSERT INTO platform_identities (tenant_id, user_id, platform, workspace_id,
                                         platform_user_id)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (tenant_id, platform, workspace_id, platform_user_id)
        DO UPDATE SET user_id = EXCLUDED.user_id
        """,
        tenant_id,
        user_id,
        identity.platform,
        identity.workspace_id,
        identity.platform_user_id,
    )


async def identities_of(conn: asyncpg.Connection, user_id: int) -> list[Identity]:
    rows = await conn.fetch(
        """
        SELECT platform, workspace_id, platform_user_id FROM platform_identities
        WHERE user_id = $1 ORDER BY platform, workspace_id, platform_user_id
        """,
        user_id,
    )
    return [Identity(**dict(r)) for r in rows]


async def find_by_identity(
    conn: asyncpg.Connection, tenant_id: int, identity: Identity
) -> User | None:
    """The user behind a platform identity; an identity registered without a workspace id
    (e.g. `users add --slack-id U123`) matches any workspace of the tenant."""
    row = await conn.fetchrow(
        f"""
        SELECT {_JOINED_USER_COLUMNS}
        FROM platform_identities i JOIN users u ON u.id = i.user_id
        WHERE i.tenant_id = $1 AND i.platform = $2 AND i.platform_user_id = $4
          AND i.workspace_id IN ($3, '')
        ORDER BY i.workspace_id DESC
        LIMIT 1
        """,
        tenant_id,
        identity.platform,
        identity.workspace_id,
        identity.platform_user_id,
    )
    return _user(row)


async def create_if_missing(
    conn: asyncpg.Connection, tenant_id: int, email: str, display_name: str, timezone: str
) -> User:
    """The user with that email, created with public access only when there is none yet
    (two first messages from one new person create one user)."""
    await conn.execute(
        """
        INSERT INTO users (tenant_id, email, display_name, timezone)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (tenant_id, email) DO NOTHING
        """,
        tenant_id,
        email.lower(),
        display_name,
        timezone,
    )
    user = await get_by_email(conn, tenant_id, email)
    assert user is not None
    return user


async def take_email(
    conn: asyncpg.Connection, tenant_id: int, user: User, email: str, display_name: str
) -> User | None:
    """Give `user` (known until now by a made-up address) the email a platform reported, when
    no other user of the tenant has it and the address is still the one `user` had; None when
    not (the caller then links the person to the user who has that email)."""
    try:
        async with conn.transaction():  # a savepoint: losing a race for the email is no error
            row = await conn.fetchrow(
                f"""
                UPDATE users SET email = $4, display_name = $5, updated_at = now()
                WHERE tenant_id = $1 AND id = $2 AND email = $3
                  AND NOT EXISTS (SELECT 1 FROM users WHERE tenant_id = $1 AND email = $4)
                RETURNING {_USER_COLUMNS}
                """,
                tenant_id,
                user.id,
                user.email,
                email.lower(),
                display_name,
            )
    except asyncpg.UniqueViolationError:
        return None
    return _user(row)
