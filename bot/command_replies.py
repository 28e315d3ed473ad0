"""Carrying out the typed commands: remember, forget, memories, docs, help."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.alerts.rules import AlertRules
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
from bot.memory import Memories
from bot.offline import excerpt
from bot.schedule_commands import run_schedule_command
from bot.schedules import Schedules
from bot.turns import Retrieved, Turn
from storage.retrieval import ChunkHit

DOCS_SHOWN = 5
# Platforms whose edge shows a command's reply (`Reply.ephemeral`) to the asker alone when it was
# typed in a shared conversation: Teams sends it to the person's 1:1 chat, the web chat shows it
# only on their page. Slack posts a channel mention's reply for everyone to see.
PRIVATE_REPLIES = frozenset({"teams", "web"})
ASK_DIRECTLY = (
    "Your memories are private, so I won't show them here: send me `{command}` in a direct message."
)


@dataclass(frozen=True)
class CommandTools:
    """What the commands act on: the person's memories, the conversation's own retrieval (for
    `docs`), and schedules and alerts where the process manages them."""

    memories: Memories
    retrieve: Callable[[Turn, str], Awaitable[Retrieved]]
    schedules: Schedules | None = None
    alerts: AlertRules | None = None


async def run_command(
    tools: CommandTools, turn: Turn, command: Command
) -> tuple[str, list[ChunkHit]]:
    """The reply text for a command, and the passages it shows (for `docs`). A command that
    would show the person's memories is refused where everyone in the conversation would see
    the reply."""
    if would_leak(command, turn):
        return ASK_DIRECTLY.format(command=_typed(command)), []
    tenant_id, user_id = turn.tenant_id, turn.user.id
    match command:
        case Remember(fact=fact):
            memory, replaced = await tools.memories.remember(tenant_id, user_id, fact)
            verb = "Updated" if replaced else "Got it"
            return f"{verb} — I'll remember: “{memory.content}” (#{memory.id}).", []
        case Forget(target=target):
            forgotten = await tools.memories.forget(tenant_id, user_id, target)
            if not forgotten:
                return (
                    f"I couldn't find a memory matching “{target}”. "
                    "Say `memories` to see them with their numbers."
                ), []
            listed = "\n".join(f"• {m.content} (#{m.id})" for m in forgotten)
            return f"Forgotten:\n{listed}", []
        case ListMemories():
            memories = await tools.memories.listing(tenant_id, user_id)
            if not memories:
                return "I don't remember anything about you yet. Tell me with `remember …`.", []
            listed = "\n".join(f"• {m.content} (#{m.id})" for m in memories)
            return f"Here is what I remember about you:\n{listed}", []
        case FindDocs(query=query):
            found = await tools.retrieve(turn, query)
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
            return await firing_alerts(tools.alerts, turn), []
        case ScheduleCommand(arguments=arguments):
            if tools.schedules is None:
                return "Schedules are not available here.", []
            reply = await run_schedule_command(
                tools.schedules,
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


def would_leak(command: Command, turn: Turn) -> bool:
    """Whether the reply would reveal personal data (memories) to others: `memories` and
    `forget` (its reply quotes what it forgot) in a shared conversation whose platform cannot
    answer the asker alone. `remember` only echoes what the person just wrote there."""
    message = turn.message
    personal = isinstance(command, ListMemories | Forget)
    return personal and not message.is_direct and message.platform not in PRIVATE_REPLIES


def _typed(command: Command) -> str:
    return f"forget {command.target}" if isinstance(command, Forget) else "memories"


async def firing_alerts(alerts: AlertRules | None, turn: Turn) -> str:
    """The alerts firing now in the asker's organisation."""
    if alerts is None:
        return "Alerts are not available here."
    firing = await alerts.history(turn.message.tenant, firing_only=True)
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
