"""Which organisation a request belongs to: a tenant's id from its slug (SPEC §3).

A tenant's slug never changes and tenants are never deleted, so each process looks a slug up
once and remembers it; every part of deskmate asks here rather than querying `tenants` itself.
"""

from __future__ import annotations

from weakref import WeakKeyDictionary

from bot.errors import NotFound
from storage import tenants
from storage.database import Database
from storage.errors import UnknownTenant

# One memo per database: tests and tools may open several databases in one process.
_KNOWN: WeakKeyDictionary[Database, dict[str, int]] = WeakKeyDictionary()


async def tenant_id(db: Database, slug: str) -> int:
    """The id of the tenant called `slug`, or NotFound."""
    known = _KNOWN.setdefault(db, {})
    if slug not in known:
        async with db.pool.acquire() as conn:
            try:
                known[slug] = (await tenants.get_tenant(conn, slug)).id
            except UnknownTenant as exc:
                raise NotFound(str(exc)) from exc
    return known[slug]


async def slug_of(db: Database, tenant: int) -> str:
    """The slug of the tenant with id `tenant`, or NotFound."""
    known = _KNOWN.setdefault(db, {})
    for slug, known_id in known.items():
        if known_id == tenant:
            return slug
    async with db.pool.acquire() as conn:
        try:
            slug = await tenants.slug_of(conn, tenant)
        except UnknownTenant as exc:
            raise NotFound(str(exc)) from exc
    known[slug] = tenant
    return slug
