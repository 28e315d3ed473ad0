"""PDF (pypdf) and Word .docx (python-docx) into blocks."""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING

from bot.ingest.parsed import Block, Heading, Paragraph, ParsedDocument, ParseError, assemble

if TYPE_CHECKING:
    from docx.table import Table
    from docx.text.paragraph import Paragraph as WordParagraph

DOCX_MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_HEADING_STYLE = re.compile(r"^Heading (\d)$")
_SPACES = re.compile(r"[ \t]+")


def parse_pdf(data: bytes, fallback_title: str) -> ParsedDocument:
    """A PDF, one section per page ("Page 3"), so answers can cite the page. PDFs carry no
    reliable heading structure, so the title comes from the metadata or the file name.

    Raises ParseError for a damaged or password-protected PDF, and for one without a text layer
    (a scan), which would otherwise be stored as an empty document.
    """
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        # Many "protected" PDFs only restrict printing and open with the empty password.
        if reader.is_encrypted and not reader.decrypt(""):
            raise ParseError("the PDF is password-protected")
        pages = [page.extract_text() or "" for page in reader.pages]
        metadata_title = reader.metadata.title if reader.metadata else None
    except ParseError:
        raise
    except Exception as exc:  # pypdf raises many exception types on damaged input
        raise ParseError(f"not a readable PDF ({type(exc).__name__}: {exc})") from exc
    blocks: list[Block] = []
    for number, text in enumerate(pages, start=1):
        lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
        page_text = "\n".join(line for line in lines if line)
        if page_text:
            blocks += [Heading(1, f"Page {number}"), Paragraph(page_text)]
    if not blocks:
        raise ParseError("the PDF has no text layer (a scan? run OCR on it first)")
    return assemble(
        blocks,
        mime_type="application/pdf",
        fallback_title=fallback_title,
        metadata_title=metadata_title if isinstance(metadata_title, str) else None,
        title_from_headings=False,
    )


def parse_docx(data: bytes, fallback_title: str) -> ParsedDocument:
    """A Word document: headings from the "Title" and "Heading N" paragraph styles, list items as
    "- item", each table as one paragraph of "cell | cell" rows, in document order."""
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
        blocks = [
            _table_block(item) if isinstance(item, Table) else _paragraph_block(item)
            for item in document.iter_inner_content()
        ]
        metadata_title = document.core_properties.title
    except Exception as exc:  # a damaged zip or XML surfaces as many exception types
        raise ParseError(f"not a readable Word document ({type(exc).__name__}: {exc})") from exc
    return assemble(
        blocks, mime_type=DOCX_MIME, fallback_title=fallback_title, metadata_title=metadata_title
    )


def _paragraph_block(paragraph: WordParagraph) -> Block:
    style = paragraph.style.name if paragraph.style is not None else ""
    text = paragraph.text.strip()
    if style == "Title":
        return Heading(0, text)
    if match := _HEADING_STYLE.match(style or ""):
        return Heading(int(match.group(1)), text)
    if style and style.startswith("List") and text:
        return Paragraph(f"- {text}")
    return Paragraph(text)


def _table_block(table: Table) -> Block:
    rows = []
    for row in table.rows:
        cells: list[str] = []
        previous = None
        for cell in row.cells:
            # A merged cell is reported once per grid column it spans, as the same element.
            if cell._tc is not previous:
                cells.append(" ".join(cell.text.split()))
            previous = cell._tc
        rows.append(" | ".join(cells))
    return Paragraph("\n".join(row for row in rows if row.strip(" |")))
