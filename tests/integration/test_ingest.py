"""Ingestion: the pipeline on the embedded PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.embedders import create_embedder
from bot.errors import UsageError
from bot.ingest import IngestReport, ingest
from bot.settings import Settings
from storage import documents
from storage.database import Database
from tests.support import TEST_DIMENSION
from tests.support.documents import HANDBOOK_MD, make_pdf, write_folder


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


async def test_an_ingest_that_changed_something_refreshes_the_planner_statistics(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    async def analysed() -> int:
        return int(
            await db.pool.fetchval(
                "SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'chunk_postings'"
            )
        )

    before = await analysed()
    folder = write_folder(tmp_path / "hr-docs")
    await run_ingest(db, settings, folder)
    after_adding = await analysed()
    await run_ingest(db, settings, folder)  # nothing changed: nothing to analyse
    assert (after_adding, await analysed()) == (before + 1, before + 1)
