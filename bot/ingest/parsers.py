"""Files into `ParsedDocument`s: one parser per supported format, chosen by file extension.

Parsers are pure: bytes in, document out, no I/O. The pipeline hashes and parses the same bytes,
so the stored hash always describes the text that was indexed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path, PurePath

from bot.ingest.markup import parse_html, parse_markdown, parse_text
from bot.ingest.office import parse_docx, parse_pdf
from bot.ingest.parsed import ParsedDocument, ParseError, Section

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "ParseError",
    "ParsedDocument",
    "Section",
    "is_supported",
    "parse_document",
    "parse_file",
]

Parser = Callable[[bytes, str], ParsedDocument]

_PARSERS: dict[str, Parser] = {
    ".md": parse_markdown,
    ".markdown": parse_markdown,
    ".txt": parse_text,
    ".html": parse_html,
    ".htm": parse_html,
    ".pdf": parse_pdf,
    ".docx": parse_docx,
}
SUPPORTED_EXTENSIONS = tuple(_PARSERS)


def is_supported(path: PurePath) -> bool:
    """Whether a file of this name has a parser (by extension, case-insensitive)."""
    return path.suffix.lower() in _PARSERS


def parse_document(data: bytes, filename: str) -> ParsedDocument:
    """Parse the bytes of a file called `filename`. Raises ParseError for an unsupported type or
    a file that cannot be read as its type; the title falls back to the file name's stem."""
    name = PurePath(filename)
    parser = _PARSERS.get(name.suffix.lower())
    if parser is None:
        kind = name.suffix or "without an extension"
        raise ParseError(
            f"unsupported file type {kind} (supported: {', '.join(SUPPORTED_EXTENSIONS)})"
        )
    return parser(data, name.stem)


def parse_file(path: Path) -> ParsedDocument:
    """Read and parse one file; an unreadable file is a ParseError too."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ParseError(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    return parse_document(data, path.name)
