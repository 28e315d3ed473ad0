"""Ingestion: parsers on real files, the pipeline on the embedded PostgreSQL, the CLI end to end."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import docx
import pypdf
import pytest

from bot.embedders import create_embedder
from bot.errors import UsageError
from bot.ingest import IngestReport, ingest
from bot.ingest.parsers import ParseError, parse_document, parse_file
from bot.settings import Settings
from storage import documents
from storage.database import Database
from tests.conftest import DESKMATE, TEST_DIMENSION

# --- files made in the test --------------------------------------------------------------------


def make_pdf(pages: list[list[str]], title: str | None = None) -> bytes:
    """A minimal valid PDF with one Helvetica text line per string, written object by object."""

    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects = {
        1: "<< /Type /Catalog /Pages 2 0 R >>",
        2: f"<< /Type /Pages /Kids [{' '.join(f'{i} 0 R' for i in page_ids)}] "
        f"/Count {len(pages)} >>",
        3: "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    for page_id, lines in zip(page_ids, pages, strict=True):
        shown = " ".join(f"({escape(line)}) Tj T*" for line in lines)
        stream = f"BT /F1 12 Tf 14 TL 72 720 Td {shown} ET"
        objects[page_id] = (
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {page_id + 1} 0 R >>"
        )
        objects[page_id + 1] = f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream"
    info_id = 4 + 2 * len(pages)
    objects[info_id] = f"<< /Title ({escape(title)}) >>" if title else "<< >>"
    out = bytearray(b"%PDF-1.4\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += f"{number} 0 obj\n{objects[number]}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {info_id + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offsets[n]:010d} 00000 n \n".encode() for n in range(1, info_id + 1))
    out += f"trailer\n<< /Size {info_id + 1} /Root 1 0 R /Info {info_id} 0 R >>\n".encode()
    out += f"startxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def make_docx(path: Path) -> Path:
    document = docx.Document()
    document.core_properties.title = "Metadata title (not used: there is a Title paragraph)"
    document.add_heading("Expenses Policy", level=0)
    document.add_paragraph("Everyone who travels for work follows this policy.")
    document.add_heading("Travel", level=1)
    document.add_heading("Flights", level=2)
    document.add_paragraph("Book economy class for flights under six hours.")
    document.add_paragraph("Use the travel portal", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    for row, cells in zip(table.rows, [("Item", "Limit"), ("Hotel", "150 EUR")], strict=True):
        for cell, text in zip(row.cells, cells, strict=True):
            cell.text = text
    document.save(path)
    return path


HANDBOOK_MD = """---
layout: page
---
# Employee Handbook

Welcome to the company.

## Leave

### Parental leave
Employees may take sixteen weeks of parental leave on full pay.

```bash
# request it in the HR portal
```

## Working hours
Core hours are ten to four.
"""

POLICY_HTML = """<!doctype html><html><head><title>Security | Intranet</title>
<style>body { color: red }</style><script>track("visit")</script></head>
<body><nav><a href="/">Home</a> <a href="/it">IT</a></nav>
<h1>Security rules</h1>
<p>Lock your screen
   when you leave your desk.</p>
<h2>Passwords</h2>
<ul><li>Use a password manager.</li><li>Never reuse a password.</li></ul>
<table><tr><th>System</th><th>Rotation</th></tr><tr><td>VPN</td><td><p>90 days</p></td></tr></table>
</body></html>"""


def write_folder(folder: Path) -> Path:
    """A department folder with one file of every supported kind (and one to be ignored)."""
    (folder / "policies").mkdir(parents=True)
    (folder / "handbook.md").write_text(HANDBOOK_MD)
    (folder / "policies" / "security.html").write_text(POLICY_HTML)
    (folder / "policies" / "holidays.txt").write_text("Public holidays follow the Berlin calendar.")
    (folder / "policies" / "onboarding.pdf").write_bytes(
        make_pdf([["Day one: collect your laptop."], ["Week two: meet your mentor."]], "Onboarding")
    )
    make_docx(folder / "expenses.docx")
    (folder / "logo.png").write_bytes(b"\x89PNG not a document")
    (folder / ".draft.md").write_text("# Hidden draft")
    return folder


# --- parsers -----------------------------------------------------------------------------------


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


# --- the pipeline on the embedded PostgreSQL ---------------------------------------------------


async def run_ingest(
    db: Database, settings: Settings, *paths: Path, access: tuple[str, ...] = ()
) -> IngestReport:
    embedder = create_embedder(settings)
    try:
        return await ingest(db, embedder, "default", paths, "hr", access, "test", progress=False)
    finally:
        await embedder.aclose()


async def chunk_rows(db: Database) -> dict[str, list[dict[str, object]]]:
    """Every chunk, by the file name of its document."""
    rows = await db.pool.fetch(
        """
        SELECT d.source_path, c.id, c.department, c.department_access, c.section_title,
               c.chunk_index, c.content, c.token_count, c.embedding
        FROM document_chunks c JOIN documents d ON d.id = c.document_id
        ORDER BY d.source_path, c.chunk_index
        """
    )
    by_file: dict[str, list[dict[str, object]]] = {}
    for row in rows:
        data = {**row, "embedding": row["embedding"].to_list()}
        by_file.setdefault(Path(row["source_path"]).name, []).append(data)
    return by_file


async def audit_actions(db: Database) -> list[str]:
    return [r["action"] for r in await db.pool.fetch("SELECT action FROM audit_log ORDER BY id")]


async def test_ingest_a_folder_stores_documents_and_chunks(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    folder = write_folder(tmp_path / "hr-docs")
    report = await run_ingest(db, settings, folder, access=("sales", "ops", "hr"))

    names = ["handbook.md", "expenses.docx", "holidays.txt", "onboarding.pdf", "security.html"]
    assert sorted(Path(p).name for p in report.added) == sorted(names)
    assert (report.updated, report.unchanged, report.failed) == ([], [], [])
    assert report.summary() == "5 files: 5 added, 0 updated, 0 unchanged, 0 failed"
    assert all(Path(p).is_absolute() for p in report.added)

    chunks = await chunk_rows(db)
    assert sorted(chunks) == sorted(names)
    for rows in chunks.values():
        for row in rows:
            assert row["department"] == "hr"
            assert row["department_access"] == ["ops", "sales"]
            embedding: list[float] = row["embedding"]  # type: ignore[assignment]
            assert len(embedding) == TEST_DIMENSION
            assert sum(x * x for x in embedding) == pytest.approx(1.0, rel=1e-3)
            assert 0 < row["token_count"] <= 500  # type: ignore[operator]
    assert [r["section_title"] for r in chunks["handbook.md"]] == [
        None,
        "Leave > Parental leave",
        "Working hours",
    ]
    assert [r["section_title"] for r in chunks["onboarding.pdf"]] == ["Page 1", "Page 2"]

    async with db.pool.acquire() as conn:
        listed = await documents.list_documents(conn, 1, "hr")
    titles = {s.document.title: (s.document.status, s.chunk_count) for s in listed}
    assert titles["Employee Handbook"] == ("ready", 3)
    assert titles["Onboarding"] == ("ready", 2)
    assert titles["Security rules"][0] == "ready"
    assert await audit_actions(db) == ["document.ingest"] * 5


async def test_unchanged_files_are_skipped_and_a_changed_one_replaced(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    folder = write_folder(tmp_path / "hr-docs")
    await run_ingest(db, settings, folder)
    before = await chunk_rows(db)

    again = await run_ingest(db, settings, folder)
    assert len(again.unchanged) == 5 and again.files == 5
    assert await chunk_rows(db) == before
    assert await audit_actions(db) == ["document.ingest"] * 5

    (folder / "handbook.md").write_text(HANDBOOK_MD.replace("sixteen weeks", "twenty weeks"))
    changed = await run_ingest(db, settings, folder)
    assert [Path(p).name for p in changed.updated] == ["handbook.md"]
    assert len(changed.unchanged) == 4
    after = await chunk_rows(db)
    old_ids = {r["id"] for r in before["handbook.md"]}
    assert old_ids.isdisjoint(r["id"] for r in after["handbook.md"])
    handbook = " ".join(str(r["content"]) for r in after["handbook.md"])
    assert "twenty weeks" in handbook and "sixteen weeks" not in handbook
    for name in ("expenses.docx", "holidays.txt", "onboarding.pdf", "security.html"):
        assert after[name] == before[name]
    assert (await audit_actions(db))[-1] == "document.update"


async def test_a_corrupt_pdf_fails_alone_and_keeps_failing_quietly(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    folder = write_folder(tmp_path / "hr-docs")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\n\x00\x01 truncated upload")
    report = await run_ingest(db, settings, folder)

    assert len(report.added) == 5
    [failure] = report.failed
    assert Path(failure.path).name == "broken.pdf"
    assert failure.error.startswith("not a readable PDF")
    async with db.pool.acquire() as conn:
        listed = await documents.list_documents(conn, 1)
    [broken] = [s for s in listed if s.document.status == "failed"]
    assert broken.document.title == "broken"
    assert broken.document.error == failure.error
    assert broken.chunk_count == 0
    assert (await audit_actions(db)).count("document.fail") == 1

    # The same broken file again: reported again, but nothing new is written.
    again = await run_ingest(db, settings, folder)
    assert len(again.failed) == 1 and len(again.unchanged) == 5
    assert (await audit_actions(db)).count("document.fail") == 1


async def test_a_broken_new_version_keeps_the_last_good_chunks(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    pdf = tmp_path / "onboarding.pdf"
    pdf.write_bytes(make_pdf([["Day one: collect your laptop."]], "Onboarding"))
    await run_ingest(db, settings, pdf)
    good = await chunk_rows(db)

    pdf.write_bytes(b"%PDF-1.7 half an upload")
    report = await run_ingest(db, settings, pdf)
    assert len(report.failed) == 1
    assert await chunk_rows(db) == good
    async with db.pool.acquire() as conn:
        [summary] = await documents.list_documents(conn, 1)
    assert (summary.document.status, summary.document.title) == ("failed", "Onboarding")
    assert summary.chunk_count == 1

    pdf.write_bytes(make_pdf([["Day one: collect your laptop."]], "Onboarding"))
    fixed = await run_ingest(db, settings, pdf)
    assert len(fixed.updated) == 1  # the stored version was not `ready`, so it is indexed again
    async with db.pool.acquire() as conn:
        [summary] = await documents.list_documents(conn, 1)
    assert (summary.document.status, summary.document.error) == ("ready", None)


async def test_new_access_on_an_unchanged_file_updates_its_chunks(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    note = tmp_path / "note.txt"
    note.write_text("The office closes at six.")
    await run_ingest(db, settings, note)
    [before] = (await chunk_rows(db))["note.txt"]
    report = await run_ingest(db, settings, note, access=("sales",))
    assert len(report.updated) == 1
    [after] = (await chunk_rows(db))["note.txt"]
    assert after["id"] == before["id"]  # not embedded again
    assert after["department_access"] == ["sales"]


async def test_bad_paths_and_departments_are_usage_errors(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    embedder = create_embedder(settings)
    with pytest.raises(UsageError, match="no such file or folder"):
        await ingest(db, embedder, "default", [tmp_path / "nope"], "hr", progress=False)
    with pytest.raises(UsageError, match="bad department name"):
        await ingest(db, embedder, "default", [tmp_path], "Human Resources", progress=False)
    assert await db.pool.fetchval("SELECT count(*) FROM documents") == 0


# --- the command line --------------------------------------------------------------------------


def deskmate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DESKMATE, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("command", [["ingest"], ["docs"], ["docs", "list"]], ids=" ".join)
def test_help(command: list[str]) -> None:
    result = deskmate(*command, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: deskmate {' '.join(command)}")


def test_missing_path_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = deskmate("ingest", str(tmp_path / "nope"), "--department", "hr")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "no such file or folder" in result.stderr


def test_cli_ingest_then_docs_list(cli_env: dict[str, str], tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "hr-docs")
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7 truncated")
    result = deskmate("ingest", str(folder), "--department", "hr", "--access", "ops", env=cli_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "6 files: 5 added, 0 updated, 0 unchanged, 1 failed (department hr)"
    )
    assert f"failed: {folder.resolve() / 'broken.pdf'}: not a readable PDF" in result.stderr

    listing = deskmate("docs", "list", "--department", "hr", env=cli_env)
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert lines[0].split() == [
        "ID",
        "DEPARTMENT",
        "ACCESS",
        "TITLE",
        "STATUS",
        "CHUNKS",
        "UPDATED",
        "SOURCE",
    ]
    broken = next(i for i, line in enumerate(lines) if "broken.pdf" in line)
    assert lines[broken].split()[1:5] == ["hr", "ops", "broken", "failed"]
    assert lines[broken + 1].strip().startswith("error: not a readable PDF")
    handbook = next(line for line in lines if "handbook.md" in line)
    assert handbook.split()[1:7] == ["hr", "ops", "Employee", "Handbook", "ready", "3"]

    only_broken = deskmate("ingest", str(folder / "broken.pdf"), "--department", "hr", env=cli_env)
    assert only_broken.returncode == 1
    assert "0 added" in only_broken.stdout
