"""Carrying out the typed commands: remember, forget, memories, docs, help."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.commands import (
    HELP_TEXT,
    Command,
    FindDocs,
    Forget,
    Help,
    ListAlerts,
    ListMemories,
    Remember,
    ScheduleCommand,
)
from bot.offline import excerpt
from bot.schedule_commands import run_schedule_command
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
                return (
                    f"I couldn't find a memory matching “{target}”. "
                    "Say `memories` to see them with their numbers."
                ), []
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
        case ListAlerts():
            return await firing_alerts(service, turn), []
        case ScheduleCommand(arguments=arguments):
            if service.schedules is None:
                return "Schedules are not available here.", []
            reply = await run_schedule_command(
                service.schedules,
                arguments,
                tenant=turn.message.tenant,
                platform=turn.message.platform,
                channel=turn.message.conversation_id,
                requester=turn.user,
            )
            return reply, []
        case Help():
            return HELP_TEXT, []
    raise AssertionError(f"unhandled command {command!r}")


async def firing_alerts(service: ConversationService, turn: Turn) -> str:
    """The alerts firing now in the asker's organisation."""
    if service.alerts is None:
        return "Alerts are not available here."
    firing = await service.alerts.history(turn.message.tenant, firing_only=True)
    if not firing:
        return "No alert is firing. ✅"
    lines = ["Firing now:"]
    for rule, instance in firing:
        ack = f" — acknowledged by {instance.acknowledged_by}" if instance.acknowledged_by else ""
        lines.append(
            f"• **{rule.name}** ({rule.severity}) since "
            f"{instance.started_at:%Y-%m-%d %H:%M} UTC, #{instance.id}{ack}"
        )
    return "\n".join(lines)
