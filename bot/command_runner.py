"""Carrying out the typed commands: remember, forget, memories, docs, help."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.commands import HELP_TEXT, Command, FindDocs, Forget, Help, ListMemories, Remember
from bot.offline import excerpt
from bot.turns import Turn
from storage.retrieval import ChunkHit

if TYPE_CHECKING:
    from bot.conversation import ConversationService

DOCS_SHOWN = 5


async def run_command(
    service: ConversationService, turn: Turn, command: Command
) -> tuple[str, list[ChunkHit]]:
    """The reply text for a command, and the passages it shows (for `docs`)."""
    tenant_id, user_id = turn.tenant_id, turn.user.id
    match command:
        case Remember(fact=fact):
            memory, replaced = await service.memories.remember(tenant_id, user_id, fact)
            verb = "Updated" if replaced else "Got it"
            return f"{verb} — I'll remember: “{memory.content}” (#{memory.id}).", []
        case Forget(target=target):
            forgotten = await service.memories.forget(tenant_id, user_id, target)
            if not forgotten:
                return (f"I couldn't find a memory matching “{target}”. "
                        "Say `memories` to see them with their numbers."), []  # fmt: skip
            listed = "\n".join(f"• {m.content} (#{m.id})" for m in forgotten)
            return f"Forgotten:\n{listed}", []
        case ListMemories():
            memories = await service.memories.listing(tenant_id, user_id)
            if not memories:
                return "I don't remember anything about you yet. Tell me with `remember …`.", []
            listed = "\n".join(f"• {m.content} (#{m.id})" for m in memories)
            return f"Here is what I remember about you:\n{listed}", []
        case FindDocs(query=query):
            found = await service.retrieve(turn, query)
            chunks = found.chunks[:DOCS_SHOWN]
            if not chunks:
                return f"No document you can read here matches “{query}”.", []
            lines = [f"Passages I would cite for “{query}”:"]
            for number, chunk in enumerate(chunks, start=1):
                where = (
                    f"{chunk.title} › {chunk.section_title}" if chunk.section_title else chunk.title
                )
                lines.append(
                    f"[{number}] *{where}* ({chunk.department})\n> {excerpt(chunk.content, 240)}"
                )
            return "\n\n".join(lines), chunks
        case Help():
            return HELP_TEXT, []
    raise AssertionError(f"unhandled command {command!r}")
