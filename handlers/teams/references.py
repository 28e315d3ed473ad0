"""Where deskmate can post in Teams: conversation references kept in PostgreSQL.

Every activity that reaches `/api/messages` refreshes its conversation's reference, so the
scheduler and alerts can post there later from any replica, also after a restart.
"""

from __future__ import annotations

import dataclasses
import logging

from bot import tenancy
from bot.outbound import Delivery
from handlers.teams.activities import CHANNEL, GROUP_CHAT, PERSONAL
from storage import teams, tenants
from storage.database import Database
from storage.teams import TeamsConversation, TeamsDelivery

logger = logging.getLogger("deskmate.teams")


def guess_kind(conversation_id: str) -> str:
    """What a conversation id not seen yet is: channels end in @thread.tacv2 (or the older
    @thread.skype), group chats are other `19:` ids, personal chats `a:` ids."""
    if conversation_id.endswith(("@thread.tacv2", "@thread.skype")):
        return CHANNEL
    return GROUP_CHAT if conversation_id.startswith("19:") else PERSONAL


class ConversationBook:
    """Teams conversation references and keyed deliveries, per deskmate tenant (the Teams bot
    itself belongs to the default tenant, SPEC §3)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def _tenant_id(self, tenant: str) -> int:
        return await tenancy.tenant_id(self.db, tenant)

    async def remember(
        self, conversation: TeamsConversation, tenant: str = tenants.DEFAULT_TENANT
    ) -> None:
        """Store or refresh the reference of a conversation the bot has just heard from."""
        tenant_id = await self._tenant_id(tenant)
        async with self.db.pool.acquire() as conn:
            new = await teams.remember_conversation(conn, tenant_id, conversation)
        if new:
            logger.info(
                "Teams: first activity from %s conversation %s; deskmate can post there as "
                "teams:%s", conversation.conversation_type, conversation.conversation_id,
                conversation.conversation_id,
            )  # fmt: skip

    async def lookup(self, tenant: str, conversation_id: str) -> TeamsConversation | None:
        """The stored conversation; for one never seen, a reference built from the most recent
        conversation (same bot, service URL and Azure AD tenant). None when Teams has never
        talked to this deskmate tenant at all."""
        tenant_id = await self._tenant_id(tenant)
        async with self.db.pool.acquire() as conn:
            found = await teams.get_conversation(conn, tenant_id, conversation_id)
            if found is not None:
                return found
            latest = await teams.latest_conversation(conn, tenant_id)
        if latest is None:
            return None
        reference = {k: v for k, v in latest.reference.items() if k != "user"}
        reference["conversation"] = {"id": conversation_id}
        if latest.aad_tenant_id:
            reference["conversation"]["tenantId"] = latest.aad_tenant_id
        return dataclasses.replace(
            latest, conversation_id=conversation_id, conversation_type=guess_kind(conversation_id),
            team_id=None, reference=reference,
        )  # fmt: skip

    async def delivery(self, tenant: str, idempotency_key: str) -> Delivery | None:
        """Where an earlier post with this key landed, if it did."""
        tenant_id = await self._tenant_id(tenant)
        async with self.db.pool.acquire() as conn:
            found = await teams.find_delivery(conn, tenant_id, idempotency_key)
        return None if found is None else Delivery(message_id=found.message_id, thread=found.thread)

    async def record(
        self, tenant: str, idempotency_key: str, conversation_id: str, delivery: Delivery
    ) -> None:
        """Remember where a keyed post landed, so a retry finds it."""
        tenant_id = await self._tenant_id(tenant)
        row = TeamsDelivery(conversation_id, delivery.message_id, delivery.thread)
        async with self.db.pool.acquire() as conn:
            await teams.record_delivery(conn, tenant_id, idempotency_key, row)
