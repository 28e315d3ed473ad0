"""Who is talking: a platform identity becomes (tenant, person) in one place, once per message."""

from __future__ import annotations

import pytest

from bot import tenancy
from bot.errors import NotFound
from bot.identity import resolve_user
from bot.messages import IncomingMessage, Profile
from storage.database import Database

ZONE = "Europe/Paris"


def _message(lookup: object = None, **fields: object) -> IncomingMessage:
    base: dict[str, object] = {
        "platform": "slack", "user_id": "U-NEW", "conversation_id": "D1", "text": "hi",
        "is_direct": True, "workspace_id": "T1", "lookup_profile": lookup,
    }  # fmt: skip
    return IncomingMessage(**(base | fields))  # type: ignore[arg-type]


class CountingLookup:
    """A platform profile lookup that counts how often the core asks."""

    def __init__(self, profile: Profile) -> None:
        self.profile, self.calls = profile, 0

    async def __call__(self) -> Profile:
        self.calls += 1
        return self.profile


async def _add_directory_user(db: Database, email: str) -> int:
    async with db.pool.acquire() as conn:
        return int(
            await conn.fetchval(
                "INSERT INTO users (tenant_id, email, display_name, department_access) "
                "VALUES (1, $1, 'Known', '{sales}') RETURNING id",
                email,
            )
        )


async def test_an_unknown_person_is_looked_up_once_and_matched_by_email(db: Database) -> None:
    directory_id = await _add_directory_user(db, "ines@example.com")
    lookup = CountingLookup(Profile("Ines@Example.com", "Inès"))
    tenant_id, first = await resolve_user(db, _message(lookup), ZONE)
    _, second = await resolve_user(db, _message(lookup), ZONE)
    assert (first.id, second.id) == (directory_id, directory_id)
    assert first.department_access == ("sales",)
    assert lookup.calls == 1  # the second message finds the linked identity
    assert tenant_id == await tenancy.tenant_id(db, "default")


async def test_a_known_person_costs_no_platform_lookup(db: Database) -> None:
    first = CountingLookup(Profile("ola@example.com", "Ola"))
    await resolve_user(db, _message(first, user_id="U-OLA"), ZONE)
    again = CountingLookup(Profile("someone-else@example.com", "Not Ola"))
    _, user = await resolve_user(db, _message(again, user_id="U-OLA"), ZONE)
    assert (again.calls, user.email) == (0, "ola@example.com")


async def test_a_failed_lookup_creates_a_public_only_placeholder(db: Database) -> None:
    lookup = CountingLookup(Profile())
    _, user = await resolve_user(db, _message(lookup, user_id="U-X"), ZONE)
    assert user.email == "u-x@slack-t1.invalid"
    assert user.department_access == () and not user.is_super_user


async def test_an_email_the_edge_already_has_needs_no_lookup(db: Database) -> None:
    lookup = CountingLookup(Profile("wrong@example.com"))
    _, user = await resolve_user(db, _message(lookup, email="kim@example.com"), ZONE)
    assert (lookup.calls, user.email) == (0, "kim@example.com")


async def test_tenant_ids_are_looked_up_once_per_process(db: Database) -> None:
    assert await tenancy.tenant_id(db, "default") == 1
    with pytest.raises(NotFound, match="no tenant called 'nowhere'"):
        await tenancy.tenant_id(db, "nowhere")
    await db.stop()  # no database any more: a slug already seen is still known
    assert await tenancy.tenant_id(db, "default") == 1
    assert await tenancy.slug_of(db, 1) == "default"
