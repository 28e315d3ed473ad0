"""Plain text, Markdown and HTML into blocks (stdlib only)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import ClassVar

from bot.ingest.parsed import Block, Heading, Paragraph, ParsedDocument, assemble

_BLANK_LINES = re.compile(r"\n\s*\n")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_SPACES = re.compile(r"[ \t\r\f\v]+")
_WHITESPACE = re.compile(r"\s+")


def decode_text(data: bytes) -> str:
    """UTF-8 (with or without BOM); files saved by older Windows tools fall back to cp1252."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def parse_text(data: bytes, fallback_title: str) -> ParsedDocument:
    """A .txt file: paragraphs separated by blank lines, no headings, titled by its file name."""
    paragraphs = [Paragraph(p) for p in _BLANK_LINES.split(decode_text(data))]
    return assemble(paragraphs, mime_type="text/plain", fallback_title=fallback_title)


def parse_markdown(data: bytes, fallback_title: str) -> ParsedDocument:
    """Markdown: ATX (`## x`) and setext headings; fenced code stays one paragraph, so a `#`
    comment in a shell snippet is not taken for a heading."""
    blocks: list[Block] = []
    lines: list[str] = []
    fence: str | None = None

    def close_paragraph() -> None:
        if lines:
            blocks.append(Paragraph("\n".join(lines)))
            lines.clear()

    for line in _strip_front_matter(decode_text(data)).splitlines():
        if fence is not None:
            lines.append(line)
            if line.strip().startswith(fence):
                fence = None
        elif match := _FENCE.match(line):
            fence = match.group(1)
            lines.append(line)
        elif match := _ATX.match(line):
            close_paragraph()
            blocks.append(Heading(len(match.group(1)), _inline(match.group(2) or "")))
        elif match := _SETEXT.match(line):
            if len(lines) == 1:  # "Title\n=====": the line above is the heading
                level = 1 if match.group(1).startswith("=") else 2
                blocks.append(Heading(level, _inline(lines.pop())))
            else:  # a thematic break (---) or stray underline ends the paragraph
                close_paragraph()
        elif not line.strip():
            close_paragraph()
        else:
            lines.append(line.rstrip())
    close_paragraph()
    return assemble(blocks, mime_type="text/markdown", fallback_title=fallback_title)


def _strip_front_matter(text: str) -> str:
    """Drop a leading YAML front matter block (static-site handbooks often have one)."""
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            return text[end + 4 :]
    return text


def _inline(text: str) -> str:
    """Heading text without emphasis markers and link targets."""
    return _LINK.sub(r"\1", text).replace("**", "").replace("`", "").strip(" *_")


def parse_html(data: bytes, fallback_title: str) -> ParsedDocument:
    """HTML: headings h1–h6, text of paragraphs, lists and tables; script, style and navigation
    are dropped. Titled by its only <h1>, else <title>."""
    reader = _HtmlBlocks()
    reader.feed(decode_text(data))
    reader.close()
    return assemble(
        reader.blocks,
        mime_type="text/html",
        fallback_title=fallback_title,
        metadata_title=reader.title,
    )


class _HtmlBlocks(HTMLParser):
    """Collects blocks while the stdlib parser walks the tags."""

    SKIPPED = frozenset({"script", "style", "nav", "noscript", "template", "svg", "iframe"})
    HEADINGS: ClassVar[dict[str, int]] = {f"h{n}": n for n in range(1, 7)}
    BLOCKS = frozenset(
        {"p", "div", "section", "article", "main", "header", "footer", "aside", "blockquote"}
        | {"pre", "ul", "ol", "dl", "dt", "dd", "li", "figure", "figcaption", "form"}
        | {"fieldset", "address", "hr", "table", "caption", "body"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.title: str | None = None
        self._text: list[str] = []
        self._skipping = 0
        self._heading: int | None = None
        self._in_title = False
        self._tables = 0
        self._cell = 0
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIPPED:
            self._skipping += 1
        elif self._skipping:
            return
        elif tag == "title":
            self._in_title = True
        elif tag in self.HEADINGS:
            self._close()
            self._heading = self.HEADINGS[tag]
        elif tag == "table":
            self._close()
            self._tables += 1
        elif tag in ("td", "th"):
            self._text.append(" | " if self._cell else "")
            self._cell += 1
        elif tag == "tr":
            self._cell = 0
        elif tag == "br":
            self._text.append("\n")
        elif tag in self.BLOCKS:
            self._pre += tag == "pre"
            # Inside a table a block (a <p> in a cell) must not cut the row apart.
            if self._tables:
                self._text.append(" ")
            else:
                self._close()
                if tag == "li":
                    self._text.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED:
            self._skipping = max(0, self._skipping - 1)
        elif self._skipping:
            return
        elif tag == "title":
            self._in_title = False
        elif tag in self.HEADINGS or tag in self.BLOCKS:
            self._pre = max(0, self._pre - (tag == "pre"))
            if tag == "table":
                self._tables = max(0, self._tables - 1)
            if not self._tables:
                self._close()
        elif tag == "tr":
            self._text.append("\n")

    def handle_data(self, data: str) -> None:
        if self._skipping:
            return
        if self._in_title:
            self.title = ((self.title or "") + " " + data).strip()
        else:
            # Line breaks in the source are layout, except inside <pre>.
            self._text.append(data if self._pre else _WHITESPACE.sub(" ", data))

    def close(self) -> None:
        super().close()
        self._close()

    def _close(self) -> None:
        """End the current block: whitespace collapsed, empty lines dropped."""
        raw = "".join(self._text)
        self._text.clear()
        lines = (_SPACES.sub(" ", line).strip() for line in raw.split("\n"))
        text = "\n".join(line for line in lines if line)
        if self._heading is not None:
            self.blocks.append(Heading(self._heading, " ".join(text.split())))
            self._heading = None
        elif text:
            self.blocks.append(Paragraph(text))
