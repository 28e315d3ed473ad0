"""Slack rendering: Markdown → mrkdwn, answers split under Slack limits, blocks. Pure."""

from __future__ import annotations

import re
from typing import Any

from bot.messages import Reply, Source
from bot.outbound import Action, Outbound

SECTION_LIMIT = 3000  # characters in one section block's text
MESSAGE_LIMIT = 3900  # keep well under chat.postMessage's ~4,000 characters of text
ACTION_PREFIX = "deskmate"


def to_mrkdwn(markdown: str) -> str:
    """Claude's Markdown in Slack's mrkdwn: bold, italics, links, headings, lists, code."""
    parts = re.split(r"(```.*?```|`[^`\n]+`)", markdown, flags=re.S)
    return "".join(part if part.startswith("`") else _convert(part) for part in parts)


def _convert(text: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = re.sub(r"^&gt; ?", "> ", text, flags=re.M)  # quotes survive the escaping
    text = re.sub(r"\[([^\]]+)\]\((https?://[^)\s]+)\)", r"<\2|\1>", text)
    text = re.sub(r"(?<![*\w])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![*\w])", r"_\1_", text)
    text = re.sub(r"\*\*(.+?)\*\*|__(.+?)__", lambda m: f"*{m[1] or m[2]}*", text)
    text = re.sub(r"^#{1,6}\s+(.+?)\s*#*$", r"*\1*", text, flags=re.M)
    text = re.sub(r"~~(.+?)~~", r"~\1~", text)
    return re.sub(r"^(\s*)[-*+]\s+", r"\1• ", text, flags=re.M)


def split_text(text: str, limit: int = SECTION_LIMIT) -> list[str]:
    """Pieces of at most `limit` characters, cut at paragraph, then line, then word boundaries."""
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind("\n\n"), window.rfind("\n"))
        if cut < limit // 2:
            cut = window.rfind(" ")
        if cut < limit // 2:
            cut = limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces or [""]


def sources_line(sources: tuple[Source, ...]) -> str:
    return "Sources: " + "  ·  ".join(
        f"[{s.number}] {_escape(s.label)} ({s.department})" for s in sources
    )


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def action_id(action: Action, index: int) -> str:
    """Bolt routes clicks by action_id, which must be unique in a message: kind + position."""
    return f"{ACTION_PREFIX}:{action.kind}:{index}"


def parse_action_id(value: str) -> str | None:
    """The kind of a deskmate button's action_id, or None for someone else's."""
    prefix, _, rest = value.partition(":")
    kind, _, _ = rest.rpartition(":")
    return kind if prefix == ACTION_PREFIX and kind else None


def actions_block(actions: tuple[Action, ...]) -> dict[str, Any]:
    elements = []
    for index, action in enumerate(actions):
        button: dict[str, Any] = {
            "type": "button", "action_id": action_id(action, index), "value": action.value,
            "text": {"type": "plain_text", "text": action.label, "emoji": True},
        }  # fmt: skip
        if action.style in ("primary", "danger"):
            button["style"] = action.style
        elements.append(button)
    return {"type": "actions", "elements": elements}


def answer_messages(reply: Reply, feedback: tuple[Action, ...]) -> list[dict[str, Any]]:
    """A reply as one or more chat.postMessage payloads (text + blocks), sources and feedback
    buttons on the last one."""
    pieces = split_text(to_mrkdwn(reply.text), MESSAGE_LIMIT)
    messages = []
    for number, piece in enumerate(pieces, start=1):
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": section}}
            for section in split_text(piece, SECTION_LIMIT)
        ]
        if number == len(pieces):
            if reply.sources:
                blocks.append(
                    {
                        "type": "context",
                        "elements": [
                            {"type": "mrkdwn", "text": sources_line(reply.sources)[:SECTION_LIMIT]}
                        ],
                    }
                )
            if feedback:
                blocks.append(actions_block(feedback))
        messages.append({"text": piece, "blocks": blocks})
    return messages  # fmt: skip


def outbound_blocks(message: Outbound) -> dict[str, Any]:
    """An Outbound (scheduled message, digest, alert) as one payload of text + blocks."""
    blocks: list[dict[str, Any]] = []
    if message.title:
        blocks.append(
            {"type": "header", "text": {"type": "plain_text", "text": message.title[:150]}}
        )
    body = to_mrkdwn(message.text)
    blocks += [
        {"type": "section", "text": {"type": "mrkdwn", "text": piece}}
        for piece in split_text(body, SECTION_LIMIT)
    ]
    if message.fields:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{_escape(label)}*\n{_escape(value)}"}
                    for label, value in message.fields[:10]
                ],
            }
        )
    if message.sources:
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": sources_line(message.sources)[:SECTION_LIMIT]}
                ],
            }
        )
    if message.actions:
        blocks.append(actions_block(message.actions))
    text = f"{message.title}\n{body}" if message.title else body
    return {"text": text[:MESSAGE_LIMIT], "blocks": blocks[:50]}  # fmt: skip
