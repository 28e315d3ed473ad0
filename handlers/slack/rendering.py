"""Slack rendering: Markdown blocks for answers, mrkdwn for fallback text, answers split under
Slack limits, blocks. Pure.

Answers and posts go out as Slack's `markdown` block, which takes standard Markdown and renders
it as the author meant (tables, nested lists, `***bold italic***`). Where only mrkdwn is
possible (the `text` fallback that notifications show, the placeholder edited while a channel
answer streams in, ephemeral notes) `to_mrkdwn` translates.
"""

from __future__ import annotations

import re
from typing import Any

from bot.messages import Reply, Source
from bot.outbound import Action, Outbound

SECTION_LIMIT = 3000  # characters in one section block's text
MESSAGE_LIMIT = 3900  # keep well under chat.postMessage's ~4,000 characters of text
# Slack allows 12,000 characters of markdown blocks per message, but rejects messages whose
# blocks add up to a little more (msg_blocks_too_long): room is left for sources and buttons.
MARKDOWN_LIMIT = 10_000
ACTION_PREFIX = "deskmate"

CODE = re.compile(r"(```.*?```|`[^`\n]+`)", re.S)
FENCE = re.compile(r"^\s*```")
TABLE_DIVIDER = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
RULE = re.compile(r"^ {0,3}([-*_])(?: *\1){2,} *$", re.M)
LIST_ITEM = re.compile(r"^(\s*)([-*+]|\d{1,3}[.)])\s+(.*)$")
# One level of parentheses inside a URL: https://en.wikipedia.org/wiki/Leave_(employment)
LINK = re.compile(r"\[([^\]\n]+)\]\(((?:https?://|mailto:)(?:[^()\s]|\([^()\s]*\))+)\)")
AUTOLINK = re.compile(r"&lt;((?:https?://|mailto:)[^\s<>]+?)&gt;")
SLOT = re.compile("\x00(\\d+)\x00")
# Stand-ins for mrkdwn's * and _ while emphasis is translated, so that a translated `*bold*`
# is never read again as Markdown italics.
BOLD, ITALIC = "\x01", "\x02"
EMPHASIS = (
    (re.compile(r"(\*\*\*|___)(?=\S)(.+?)(?<=\S)\1"), BOLD + ITALIC + r"\2" + ITALIC + BOLD),
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), BOLD + r"\2" + BOLD),
    (re.compile(r"(?<![*\w])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![*\w])"), ITALIC + r"\1" + ITALIC),
    (re.compile(r"(?<![_\w])_(?=\S)([^_\n]+?)(?<=\S)_(?![_\w])"), ITALIC + r"\1" + ITALIC),
    (re.compile(r"~~(?=\S)(.+?)(?<=\S)~~"), r"~\1~"),
)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$", re.M)
INDENT = "\u2003\u2003"  # em spaces: Slack does not collapse them, as it may plain spaces
BULLETS = ("•", "◦", "▪")


def markdown_block(markdown: str) -> dict[str, Any]:
    """Standard Markdown, rendered by Slack."""
    return {"type": "markdown", "text": slack_markdown(markdown)}


def slack_markdown(markdown: str) -> str:
    """Markdown for a markdown block or a streamed message. Slack still reads its own `<…>`
    tokens there: an answer quoting `<!channel>` or `<@U123>` from a document would notify
    people. An escaped `<` shows as itself and starts no token."""
    return markdown.replace("<", "&lt;")


def to_mrkdwn(markdown: str) -> str:
    """Claude's Markdown in Slack's mrkdwn: emphasis, links, headings, nested lists, quotes,
    code; tables become aligned columns in a code block (mrkdwn has no tables)."""
    parts = CODE.split(_tables_as_code(markdown))
    return "".join(_escape(part) if part.startswith("`") else _convert(part) for part in parts)


def _convert(text: str) -> str:
    slots: list[str] = []

    def hold(mrkdwn: str) -> str:
        slots.append(mrkdwn)
        return f"\x00{len(slots) - 1}\x00"

    text = _escape(re.sub("[\x00-\x02]", "", text))  # the stand-ins are ours alone
    text = re.sub(r"^&gt; ?", "> ", text, flags=re.M)  # quotes survive the escaping
    text = RULE.sub("──────────", text)  # before lists: `* * *` is a rule, not an item
    text = _lists(text)
    text = LINK.sub(lambda m: hold(f"<{m[2]}|{_emphasis(m[1]).replace('|', '¦')}>"), text)
    text = AUTOLINK.sub(lambda m: hold(f"<{m[1]}>"), text)
    text = HEADING.sub(lambda m: BOLD + m[1].replace("**", "") + BOLD, text)
    text = _emphasis(text)
    text = SLOT.sub(lambda m: slots[int(m[1])], text)
    return text.replace(BOLD, "*").replace(ITALIC, "_")


def _emphasis(text: str) -> str:
    for pattern, replacement in EMPHASIS:
        text = pattern.sub(replacement, text)
    return text


def _lists(text: str) -> str:
    """Bullets and numbers, indented by nesting level (the indents of the items above)."""
    out: list[str] = []
    indents: list[int] = []
    for line in text.split("\n"):
        item = LIST_ITEM.match(line)
        if item is None:
            if line.strip() and not line.startswith(" "):
                indents = []  # a paragraph ends the list
            out.append(line)
            continue
        indent = len(item[1].expandtabs(4))
        while indents and indent < indents[-1]:
            indents.pop()
        if not indents or indent > indents[-1]:
            indents.append(indent)
        level = len(indents) - 1
        marker = item[2] if item[2][0].isdigit() else BULLETS[level % len(BULLETS)]
        out.append(f"{INDENT * level}{marker} {item[3]}")
    return "\n".join(out)


def _tables_as_code(markdown: str) -> str:
    """GFM tables (outside code) as code blocks of aligned columns."""
    lines = markdown.split("\n")
    out: list[str] = []
    index, fenced = 0, False
    while index < len(lines):
        line = lines[index]
        if FENCE.match(line):
            fenced = not fenced
        is_table = (
            not fenced and "|" in line and index + 1 < len(lines)
            and "|" in lines[index + 1] and TABLE_DIVIDER.match(lines[index + 1]) is not None
        )  # fmt: skip
        if not is_table:
            out.append(line)
            index += 1
            continue
        end = index + 2
        while end < len(lines) and "|" in lines[end] and lines[end].strip():
            end += 1
        out.append(_table(lines[index], lines[index + 1], lines[index + 2 : end]))
        index = end
    return "\n".join(out)


def _table(header: str, divider: str, rows: list[str]) -> str:
    grid = [_cells(header), *(_cells(row) for row in rows)]
    columns = max(len(row) for row in grid)
    grid = [row + [""] * (columns - len(row)) for row in grid]
    widths = [max(len(row[c]) for row in grid) for c in range(columns)]
    right = [cell.endswith(":") and not cell.startswith(":") for cell in _cells(divider)]
    right += [False] * (columns - len(right))

    def line(row: list[str]) -> str:
        cells = (
            cell.rjust(width) if align else cell.ljust(width)
            for cell, width, align in zip(row, widths, right, strict=False)
        )
        return " | ".join(cells).rstrip()

    ruler = "-+-".join("-" * width for width in widths)
    return "\n".join(["```", line(grid[0]), ruler, *map(line, grid[1:]), "```"])


def _cells(row: str) -> list[str]:
    row = row.strip().removeprefix("|").removesuffix("|")
    cells = re.split(r"(?<!\\)\|", row)
    return [_plain(cell.replace("\\|", "|").strip()) for cell in cells]


def _plain(cell: str) -> str:
    """A cell's text without inline markup: a code block shows markup as it is."""
    cell = LINK.sub(lambda m: f"{m[1]} ({m[2]})", cell)
    return re.sub(r"\*\*|__|`|~~", "", cell)


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
    """A reply as one or more chat.postMessage payloads, sources and feedback buttons on the
    last one."""
    return markdown_messages(reply.text, answer_trailer(reply, feedback))


def answer_trailer(reply: Reply, feedback: tuple[Action, ...]) -> list[dict[str, Any]]:
    """The blocks that close an answer: its sources, then 👍/👎."""
    blocks: list[dict[str, Any]] = []
    if reply.sources:
        blocks.append(sources_block(reply.sources))
    if feedback:
        blocks.append(actions_block(feedback))
    return blocks


def markdown_messages(markdown: str, trailer: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Markdown as chat.postMessage payloads (text + blocks) under Slack's limits: each a
    markdown block with its mrkdwn fallback; `trailer` closes the last."""
    messages: list[dict[str, Any]] = []
    for piece in split_text(markdown, MESSAGE_LIMIT):
        blocks = [markdown_block(piece)] if piece.strip() else []
        messages.append({"text": fallback_text(piece), "blocks": blocks})
    messages[-1]["blocks"] += trailer
    return messages


def fallback_text(markdown: str, limit: int = MESSAGE_LIMIT) -> str:
    """What notifications (and clients that cannot draw the blocks) show."""
    return _shorten(to_mrkdwn(markdown), limit)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sources_block(sources: tuple[Source, ...]) -> dict[str, Any]:
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": sources_line(sources)[:SECTION_LIMIT]}],
    }


def outbound_blocks(message: Outbound) -> dict[str, Any]:
    """An Outbound (scheduled message, digest, alert) as one payload of text + blocks."""
    blocks: list[dict[str, Any]] = []
    if message.title:
        blocks.append(
            {"type": "header", "text": {"type": "plain_text", "text": message.title[:150]}}
        )
    if message.text.strip():
        blocks.append(markdown_block(_shorten(message.text.strip(), MARKDOWN_LIMIT)))
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
        blocks.append(sources_block(message.sources))
    if message.actions:
        blocks.append(actions_block(message.actions))
    body = to_mrkdwn(message.text)
    text = f"{message.title}\n{body}" if message.title else body
    return {"text": _shorten(text, MESSAGE_LIMIT), "blocks": blocks}
