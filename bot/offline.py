"""Offline mode (no ANTHROPIC_API_KEY): the reply quotes what retrieval found, with sources."""

from __future__ import annotations

import re
from collections.abc import Sequence

from storage.memories import ScoredMemory
from storage.retrieval import ChunkHit

NO_MODEL = "No language model is configured, so I can't write an answer"
EXCERPT_CHARS = 500
QUOTED = 3  # passages quoted in an offline reply


_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


def _readable_line(line: str) -> str:
    """A Markdown table row as "cell · cell;", so a quoted table still reads in one line."""
    if _TABLE_RULE.match(line):
        return ""
    if line.strip().startswith("|"):
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        return " · ".join(cell for cell in cells if cell) + ";"
    return line


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The passage on one line (tables as "cell · cell;" rows), cut at a sentence or word
    boundary near `limit` characters."""
    text = "\n".join(_readable_line(line) for line in text.splitlines())
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "))
    return (cut[: end + 1] if end > limit // 2 else cut.rsplit(" ", 1)[0]) + " …"


def compose(
    question: str,
    chunks: Sequence[ChunkHit],
    memories: Sequence[ScoredMemory],
    *,
    reason: str = NO_MODEL,
) -> str:
    """Quote the best passages with their sources, and the relevant memories; the first line
    says why there is no written answer (`reason`)."""
    if not chunks and not memories:
        return (
            f"{reason}, and I found nothing in the documents you can read here that matches "
            f"“{question.strip()}”. Try other words, or `docs <words>` to search the documents."
        )
    parts = [f"{reason}; here is what I found in the documents you can read here:"]
    if not chunks:
        parts = [f"{reason}, and no document you can read here matches."]
    for number, chunk in enumerate(chunks[:QUOTED], start=1):
        where = f"{chunk.title} › {chunk.section_title}" if chunk.section_title else chunk.title
        parts.append(f"> {excerpt(chunk.content)}\n— [{number}] *{where}* ({chunk.department})")
    if memories:
        parts.append("What I remember about you that may help:")
        parts += [f"• {m.memory.content}" for m in memories]
    return "\n\n".join(parts)
