"""Once-only handling of platform events, and what the edges may ask about past conversations."""

from __future__ import annotations

from bot import tenancy
from storage import events, sessions
from storage.database import Database


class EventLedger:
    """Claims platform events so retries and twins produce one answer (processed_events)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def claim(self, platform: str, event_id: str, tenant: str = "default") -> bool:
        """True when this delivery should be processed; False for a duplicate."""
        tenant_id = await tenancy.tenant_id(self.db, tenant)
        async with self.db.pool.acquire() as conn:
            return await events.claim(conn, platform, event_id, tenant_id)

    async def finish(self, platform: str, event_id: str, *, ok: bool) -> None:
        async with self.db.pool.acquire() as conn:
            await events.finish(conn, platform, event_id, ok=ok)

    async def conversation_seen(self, platform: str, conversation_key: str, tenant: str) -> bool:
        """Whether deskmate has already talked in this conversation or thread."""
        tenant_id = await tenancy.tenant_id(self.db, tenant)
        async with self.db.pool.acquire() as conn:
            return await sessions.conversation_seen(conn, tenant_id, platform, conversation_key)
