"""What every parser produces: a title and the document's text cut at its headings.

Parsers turn a file into a flat list of blocks (headings and paragraphs); `assemble` turns the
blocks into sections, each carrying the path of headings above it ("Leave > Parental leave"), so
chunking and citations can follow the document's own structure whatever its format.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.errors import DeskmateError


class ParseError(DeskmateError):
    """A file could not be turned into text; the message says why, for the person ingesting."""

    http_status = 422


@dataclass(frozen=True)
class Heading:
    """A heading of `level` 1–9; level 0 is the document's own title (a docx "Title" paragraph)."""

    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


Block = Heading | Paragraph


@dataclass(frozen=True)
class Section:
    """The text under one heading path; `heading_path` is empty for text before any heading."""

    heading_path: tuple[str, ...]
    text: str

    @property
    def title(self) -> str | None:
        """The heading path as people read it, "Leave > Parental leave"; None before any heading."""
        return " > ".join(self.heading_path) or None


@dataclass(frozen=True)
class ParsedDocument:
    title: str
    sections: list[Section]
    mime_type: str


def assemble(
    blocks: Sequence[Block],
    *,
    mime_type: str,
    fallback_title: str,
    metadata_title: str | None = None,
    title_from_headings: bool = True,
) -> ParsedDocument:
    """Sections from blocks, and the best title: a title heading (docx Title, or a first H1 that
    is the only H1), else the metadata title, else the first H1, else `fallback_title`.

    The title heading itself is not part of the heading paths: every section of a handbook titled
    "Handbook" would otherwise start with "Handbook > …". Raises ParseError when there is no text.
    """
    blocks = [b for b in blocks if b.text.strip()]
    title_at = _title_heading(blocks) if title_from_headings else None
    first_h1 = next((b.text for b in blocks if isinstance(b, Heading) and b.level <= 1), None)
    title = (
        (blocks[title_at].text if title_at is not None else None)
        or (metadata_title or "").strip()
        or (first_h1 if title_from_headings else None)
        or fallback_title
    )
    sections: list[Section] = []
    stack: list[Heading] = []
    paragraphs: list[str] = []

    def close_section() -> None:
        if paragraphs:
            path = tuple(h.text for h in stack)
            sections.append(Section(path, "\n\n".join(paragraphs)))
            paragraphs.clear()

    for index, block in enumerate(blocks):
        if isinstance(block, Paragraph):
            paragraphs.append(block.text.strip())
            continue
        close_section()
        if index == title_at:
            continue
        level = max(block.level, 1)  # a second "Title" paragraph acts as a top-level heading
        while stack and stack[-1].level >= level:
            stack.pop()
        stack.append(Heading(level, block.text.strip()))
    close_section()
    if not sections:
        raise ParseError("no text found in the document")
    return ParsedDocument(title=title.strip(), sections=sections, mime_type=mime_type)


def _title_heading(blocks: Sequence[Block]) -> int | None:
    """Index of the heading that names the whole document, if one does."""
    headings = [(i, b) for i, b in enumerate(blocks) if isinstance(b, Heading)]
    if not headings:
        return None
    index, first = headings[0]
    if first.level == 0:
        return index
    top_level = [b for _, b in headings if b.level <= 1]
    if first.level == 1 and len(top_level) == 1:
        return index
    return None
