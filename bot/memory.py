"""Memories a person manages by hand (remember / forget / list) and those Claude extracts after
an exchange, kept deduplicated and current with ADD / UPDATE / DELETE / NONE decisions."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.commands import memory_id
from bot.embeddings import Embedder
from bot.llm import Claude
from bot.llm_calls import completion_record
from storage import measurements
from storage import memories as store
from storage.database import Database

if TYPE_CHECKING:
    from anthropic.types import ToolParam

logger = logging.getLogger("deskmate.memory")

# An explicit "remember" this close to an existing memory replaces it instead of duplicating it.
SAME_FACT_SIMILARITY = 0.92
# "forget <words>" with no literal match drops the nearest memory only when it is this close.
FORGET_SIMILARITY = 0.5
EXTRACTION_CANDIDATES = 8

EXTRACTION_TOOL: ToolParam = {
    "name": "update_memories",
    "description": (
        "Record durable facts about the user learned from this exchange, comparing each with "
        "the user's existing memories: ADD a new fact, UPDATE an existing memory whose fact "
        "changed (give its id and the new full content), DELETE a memory the user said is no "
        "longer true, or NONE when nothing durable was learned."
    ),
    "input_schema": {
        "type": "object",
        "properties": {
            "operations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "action": {"type": "string", "enum": ["ADD", "UPDATE", "DELETE", "NONE"]},
                        "memory_id": {"type": "integer"},
                        "content": {"type": "string"},
                        "importance": {"type": "number", "minimum": 0, "maximum": 1},
                        "tags": {"type": "array", "items": {"type": "string"}},
                    },
                    "required": ["action"],
                },
            }
        },
        "required": ["operations"],
    },
}

EXTRACTION_PROMPT = """You maintain the long-term memory of deskmate, a workplace assistant. \
Keep only durable facts about the user (role, team, location, responsibilities, projects, \
preferences, constraints), one fact per memory, written in the third person ("Manages the \
Berlin warehouse"). Never store secrets, passwords, or facts about other people's private lives. \
Questions the user asked are not facts about them. Prefer UPDATE over ADD when an existing \
memory covers the same subject."""


@dataclass(frozen=True)
class ExtractionResult:
    added: int = 0
    updated: int = 0
    deleted: int = 0


class Memories:
    """One user's memories, through the embedder and the database."""

    def __init__(self, db: Database, embedder: Embedder) -> None:
        self.db = db
        self.embedder = embedder

    async def remember(self, tenant_id: int, user_id: int, fact: str) -> tuple[store.Memory, bool]:
        """Keep a fact the user stated; returns it and whether it replaced a near-identical one."""
        vector = await self.embedder.embed_query(fact)
        new = store.NewMemory(content=fact, embedding=vector, importance=0.8)
        async with self.db.transaction() as conn:
            nearest = await store.closest(conn, tenant_id, user_id, vector, 1)
            if nearest and nearest[0].similarity >= SAME_FACT_SIMILARITY:
                updated = await store.update(conn, tenant_id, user_id, nearest[0].memory.id, new)
                if updated is not None:
                    return updated, True
            return await store.add(conn, tenant_id, user_id, new), False

    async def forget(self, tenant_id: int, user_id: int, target: str) -> list[store.Memory]:
        """Drop the memory with that id, or those containing the text, or the nearest one."""
        async with self.db.transaction() as conn:
            if (wanted := memory_id(target)) is not None:
                return await store.deactivate(conn, tenant_id, user_id, [wanted])
            matching = await store.matching_text(conn, tenant_id, user_id, target)
            if matching:
                return await store.deactivate(conn, tenant_id, user_id, [m.id for m in matching])
            vector = await self.embedder.embed_query(target)
            nearest = await store.closest(conn, tenant_id, user_id, vector, 1)
            if nearest and nearest[0].similarity >= FORGET_SIMILARITY:
                return await store.deactivate(conn, tenant_id, user_id, [nearest[0].memory.id])
            return []

    async def listing(self, tenant_id: int, user_id: int) -> list[store.Memory]:
        async with self.db.pool.acquire() as conn:
            return await store.list_active(conn, tenant_id, user_id)

    async def extract(
        self, claude: Claude, tenant_id: int, user_id: int, question: str, answer: str
    ) -> ExtractionResult:
        """Let Claude turn the exchange into memory operations against the closest memories."""
        vector = await self.embedder.embed_query(question)
        async with self.db.pool.acquire() as conn:
            candidates = await store.closest(
                conn, tenant_id, user_id, vector, EXTRACTION_CANDIDATES
            )
        existing = "\n".join(f"- id {c.memory.id}: {c.memory.content}" for c in candidates)
        prompt = (
            f"<existing_memories>\n{existing or '(none)'}\n</existing_memories>\n"
            f"<exchange>\nUser: {question}\n\nAssistant: {answer}\n</exchange>\n"
            "Call update_memories with the operations this exchange calls for."
        )
        completion = await claude.call_tool(
            system=[{"type": "text", "text": EXTRACTION_PROMPT,
                     "cache_control": {"type": "ephemeral"}}],
            messages=[{"role": "user", "content": prompt}],
            tool=EXTRACTION_TOOL,
        )  # fmt: skip
        allowed = {c.memory.id for c in candidates}
        operations = (completion.tool_input or {}).get("operations") or []
        result = await self._apply(tenant_id, user_id, operations, allowed)
        async with self.db.pool.acquire() as conn:
            await measurements.log_llm_call(
                conn, completion_record(tenant_id, "memory_extraction", completion)
            )
        return result

    async def _apply(
        self, tenant_id: int, user_id: int, operations: list[Any], allowed: set[int]
    ) -> ExtractionResult:
        added = updated = deleted = 0
        for op in operations:
            if not isinstance(op, dict):
                continue
            action, content = op.get("action"), str(op.get("content") or "").strip()
            target = op.get("memory_id")
            importance = min(1.0, max(0.0, float(op.get("importance") or 0.5)))
            tags = [str(t) for t in op.get("tags") or []]
            # Claude may only touch the memories it was shown: an id it made up is ignored.
            offered = target if isinstance(target, int) and target in allowed else None
            if action in ("UPDATE", "DELETE") and offered is None:
                logger.info("ignoring %s of memory %r not offered to the model", action, target)
                continue
            async with self.db.transaction() as conn:
                if action == "ADD" and content:
                    new = store.NewMemory(
                        content,
                        await self.embedder.embed_query(content),
                        importance,
                        "extracted",
                        tags,
                    )
                    await store.add(conn, tenant_id, user_id, new)
                    added += 1
                elif action == "UPDATE" and content and offered is not None:
                    new = store.NewMemory(
                        content,
                        await self.embedder.embed_query(content),
                        importance,
                        "extracted",
                        tags,
                    )
                    updated += bool(await store.update(conn, tenant_id, user_id, offered, new))
                elif action == "DELETE" and offered is not None:
                    deleted += len(await store.deactivate(conn, tenant_id, user_id, [offered]))
        return ExtractionResult(added, updated, deleted)
