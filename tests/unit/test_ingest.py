"""Ingestion, the parsers: Markdown, text, HTML, Word and PDF files made in the test."""

from __future__ import annotations

import io
from pathlib import Path

import pypdf
import pytest

from bot.ingest.parsers import ParseError, parse_document, parse_file
from tests.support.documents import HANDBOOK_MD, POLICY_HTML, make_docx, make_pdf


def test_markdown_sections_follow_headings() -> None:
    parsed = parse_document(HANDBOOK_MD.encode(), "handbook.md")
    assert parsed.title == "Employee Handbook"
    assert parsed.mime_type == "text/markdown"
    assert [s.title for s in parsed.sections] == [None, "Leave > Parental leave", "Working hours"]
    # The comment inside the code fence is text, not a heading.
    assert "# request it in the HR portal" in parsed.sections[1].text


def test_markdown_with_several_h1_keeps_them_as_sections() -> None:
    parsed = parse_document(b"# Leave\nRules.\n\nExpenses\n========\nReceipts.", "guide.md")
    assert parsed.title == "Leave"
    assert [s.heading_path for s in parsed.sections] == [("Leave",), ("Expenses",)]


def test_text_file_is_titled_by_its_name() -> None:
    parsed = parse_document(b"First paragraph.\n\nSecond paragraph.", "holiday-rules.txt")
    assert parsed.title == "holiday-rules"
    assert parsed.sections[0].text == "First paragraph.\n\nSecond paragraph."


def test_html_keeps_text_structure_and_drops_scripts_styles_and_navigation() -> None:
    parsed = parse_document(POLICY_HTML.encode(), "security.html")
    assert parsed.title == "Security rules"
    assert [(s.title, s.text) for s in parsed.sections] == [
        (None, "Lock your screen when you leave your desk."),
        (
            "Passwords",
            "- Use a password manager.\n\n- Never reuse a password.\n\n"
            "System | Rotation\nVPN | 90 days",
        ),
    ]
    everything = " ".join(s.text for s in parsed.sections)
    assert "track" not in everything and "color" not in everything and "Home" not in everything


def test_html_without_h1_is_titled_by_title_tag() -> None:
    parsed = parse_document(b"<title>Canteen</title><h2>Menu</h2><p>Soup.</p>", "c.htm")
    assert parsed.title == "Canteen"
    assert parsed.sections[0].title == "Menu"


def test_docx_headings_lists_and_tables(tmp_path: Path) -> None:
    parsed = parse_file(make_docx(tmp_path / "expenses.docx"))
    assert parsed.title == "Expenses Policy"
    assert parsed.mime_type.endswith("wordprocessingml.document")
    assert [(s.title, s.text) for s in parsed.sections] == [
        (None, "Everyone who travels for work follows this policy."),
        (
            "Travel > Flights",
            "Book economy class for flights under six hours.\n\n- Use the travel portal\n\n"
            "Item | Limit\nHotel | 150 EUR",
        ),
    ]


def test_pdf_gives_one_section_per_page_and_the_metadata_title() -> None:
    data = make_pdf([["Day one: collect your laptop.", "Sign the forms."], ["Week two."]], "Start")
    assert pypdf.PdfReader(io.BytesIO(data)).pages  # a PDF pypdf itself accepts
    parsed = parse_document(data, "onboarding.pdf")
    assert parsed.title == "Start"
    assert parsed.mime_type == "application/pdf"
    assert [(s.title, s.text) for s in parsed.sections] == [
        ("Page 1", "Day one: collect your laptop.\nSign the forms."),
        ("Page 2", "Week two."),
    ]
    assert parse_document(make_pdf([["Text."]]), "no-title.pdf").title == "no-title"


def test_broken_pdfs_are_parse_errors() -> None:
    with pytest.raises(ParseError, match="not a readable PDF"):
        parse_document(b"%PDF-1.4\nthis is not really a PDF", "broken.pdf")
    with pytest.raises(ParseError, match="no text layer"):
        parse_document(make_pdf([[]]), "scan.pdf")
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(make_pdf([["Secret."]]))))
    writer.encrypt("open sesame", algorithm="RC4-128")
    encrypted = io.BytesIO()
    writer.write(encrypted)
    with pytest.raises(ParseError, match="password-protected"):
        parse_document(encrypted.getvalue(), "locked.pdf")


def test_other_files_are_clear_parse_errors() -> None:
    with pytest.raises(ParseError, match=r"unsupported file type \.png"):
        parse_document(b"\x89PNG", "logo.png")
    with pytest.raises(ParseError, match="not a readable Word document"):
        parse_document(b"not a zip", "memo.docx")
    with pytest.raises(ParseError, match="no text found"):
        parse_document(b"\n\n", "empty.md")
