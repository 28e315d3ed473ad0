"""Tenants: the organisations sharing one deskmate database."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from storage.errors import UnknownTenant

DEFAULT_TENANT = "default"


@dataclass(frozen=True)
class Tenant:
    id: int
    slug: str
    name: str


async def get_tenant(conn: asyncpg.Connection, slug: str) -> Tenant:
    """The tenant called `slug`, or UnknownTenant."""
    row = await conn.fetchrow("SELECT id, slug, name FROM tenants WHERE slug = $1", slug)
    if row is None:
        raise UnknownTenant(f"no tenant called {slug!r}")
    return Tenant(**dict(row))


async def ensure_tenant(conn: asyncpg.Connection, slug: str, name: str) -> Tenant:
    """The tenant called `slug`, created when missing (e.g. a new Slack workspace install)."""
    row = await conn.fetchrow(
        """
        INSERT INTO tenants (slug, name) VALUES ($1, $2)
        ON CONFLICT (slug) DO UPDATE SET slug = EXCLUDED.slug
        RETURNING id, slug, name
        """,
        slug,
        name,
    )
    return Tenant(**dict(row))


async def slug_of(conn: asyncpg.Connection, tenant_id: int) -> str:
    slug = await conn.fetchval("SELECT slug FROM tenants WHERE id = $1", tenant_id)
    if slug is None:
        raise UnknownTenant(f"no tenant with id {tenant_id}")
    return str(slug)
