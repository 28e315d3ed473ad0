"""A message in flight through the conversation service, and what retrieval found for it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from bot.messages import IncomingMessage
from storage.memories import ScoredMemory
from storage.retrieval import ChunkHit, Reader
from storage.users import User


@dataclass(frozen=True)
class Turn:
    """One message in flight: who, where, and the stored question."""

    message: IncomingMessage
    tenant_id: int
    user: User
    session_id: int
    sequence_number: int
    today: dt.date
    started: float

    def reader(self, public_departments: list[str]) -> Reader:
        """The access context of this turn: in a channel, the channel's clearances apply."""
        return Reader(
            tenant_id=self.tenant_id,
            user_id=self.user.id,
            platform=self.message.platform,
            channel_id=None if self.message.is_direct else self.message.conversation_id,
            public_departments=tuple(public_departments),
        )


@dataclass(frozen=True)
class Retrieved:
    chunks: list[ChunkHit]
    memories: list[ScoredMemory]
    record: dict[str, float | int | None]
