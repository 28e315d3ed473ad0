"""A person's own data (SPEC §9): everyone may view, edit and forget their memories, export
them as JSON, and erase them all (written to the audit log)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from bot.errors import NotFound, UsageError
from bot.memory import Memories
from storage import audit, users
from storage import memories as store
from storage.memories import Memory

# A memory is one fact; a page that sends more is sending something else.
MAX_MEMORY_CHARS = 2000


def memory_view(memory: Memory, *, active: bool = True) -> dict[str, Any]:
    """A memory as the person sees it (never its vector)."""
    return {
        "id": memory.id, "content": memory.content, "importance": memory.importance,
        "source": memory.source_type, "tags": list(memory.tags), "active": active,
        "created_at": memory.created_at.isoformat(), "updated_at": memory.updated_at.isoformat(),
    }  # fmt: skip


def _content(text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise UsageError("a memory needs some text")
    if len(text) > MAX_MEMORY_CHARS:
        raise UsageError(f"a memory holds at most {MAX_MEMORY_CHARS} characters")
    return text.strip()


class OwnData:
    """One person's memories, through the embedder (an edited memory is found by its new
    meaning) and the database."""

    def __init__(self, memories: Memories) -> None:
        self.memories = memories
        self.db = memories.db

    async def listing(self, user: users.User) -> list[Memory]:
        """The person's active memories, newest first."""
        async with self.db.pool.acquire() as conn:
            found = await store.every_memory(conn, user.tenant_id, user.id)
        active = [memory for memory, is_active in found if is_active]
        return sorted(active, key=lambda m: (m.updated_at, m.id), reverse=True)

    async def edit(self, user: users.User, memory_id: int, text: object) -> Memory:
        """Replace a memory's text, keeping its importance and tags; NotFound unless it is an
        active memory of the person."""
        content = _content(text)
        current = next((m for m in await self.listing(user) if m.id == memory_id), None)
        if current is None:
            raise NotFound(f"you have no memory #{memory_id}")
        vector = await self.memories.embedder.embed_query(content)
        new = store.NewMemory(content, vector, current.importance, current.source_type,
                              list(current.tags), source_ref={"edited": "web"})  # fmt: skip
        async with self.db.transaction() as conn:
            updated = await store.update(conn, user.tenant_id, user.id, memory_id, new)
        if updated is None:
            raise NotFound(f"you have no memory #{memory_id}")
        return updated

    async def forget(self, user: users.User, memory_id: int) -> Memory:
        """Forget one memory (never retrieved again); NotFound unless it is the person's."""
        async with self.db.transaction() as conn:
            gone = await store.deactivate(conn, user.tenant_id, user.id, [memory_id])
        if not gone:
            raise NotFound(f"you have no memory #{memory_id}")
        return gone[0]

    async def export(self, user: users.User, now: dt.datetime) -> dict[str, Any]:
        """Everything deskmate keeps about the person's profile and memories, forgotten ones
        included, as JSON-ready data."""
        async with self.db.pool.acquire() as conn:
            found = await store.every_memory(conn, user.tenant_id, user.id)
            identities = await users.identities_of(conn, user.id)
        profile = {k: v for k, v in user.as_dict().items() if k not in ("id", "tenant_id")}
        return {
            "exported_at": now.isoformat(),
            "person": profile,
            "identities": [{"platform": i.platform, "workspace": i.workspace_id,
                            "user": i.platform_user_id} for i in identities],
            "memories": [memory_view(m, active=active) for m, active in found],
        }  # fmt: skip

    async def erase(self, user: users.User, *, actor: str) -> int:
        """Delete every memory of the person, forgotten ones too, and write it to the audit
        log in the same transaction; how many were erased."""
        async with self.db.transaction() as conn:
            erased = await store.erase_all(conn, user.tenant_id, user.id)
            await audit.record(
                conn, tenant_id=user.tenant_id, actor=actor, action="memories.erase",
                target_type="user", target_id=user.email, before={"memories": erased},
                after={"memories": 0},
            )  # fmt: skip
        return erased
