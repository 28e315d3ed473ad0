"""`deskmate ingest` and `deskmate docs`: the real command, end to end."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.support import DESKMATE
from tests.support.documents import write_folder


def deskmate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DESKMATE, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    "command",
    [["ingest"], ["docs"], ["docs", "list"], ["docs", "delete"], ["docs", "cited"]],
    ids=" ".join,
)
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


def test_cli_sync_removes_a_vanished_file_after_a_dry_run(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    folder = write_folder(tmp_path / "hr-docs")
    assert deskmate("ingest", str(folder), "--department", "hr", env=cli_env).returncode == 0
    (folder / "policies" / "holidays.txt").unlink()
    gone = folder.resolve() / "policies" / "holidays.txt"

    dry = deskmate("ingest", "--sync", "--dry-run", str(folder), "--department", "hr", env=cli_env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        "dry run, nothing changed: 4 files: 0 added, 0 updated, 4 unchanged, 0 failed, "
        "1 removed (department hr)",
        f"would remove: {gone}",
    ]

    synced = deskmate("ingest", "--sync", str(folder), "--department", "hr", env=cli_env)
    assert synced.returncode == 0, synced.stderr
    assert synced.stdout.splitlines() == [
        "4 files: 0 added, 0 updated, 4 unchanged, 0 failed, 1 removed (department hr)",
        f"removed: {gone}",
    ]
    listing = deskmate("docs", "list", env=cli_env).stdout
    assert "holidays" not in listing and "handbook.md" in listing


def test_cli_docs_delete_by_path_or_id_and_cited(cli_env: dict[str, str], tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "hr-docs")
    assert deskmate("ingest", str(folder), "--department", "hr", env=cli_env).returncode == 0
    assert deskmate("ingest", str(folder), "--department", "ops", env=cli_env).returncode == 0

    # The working directory is tmp_path: a relative path names the file as ingest stored it.
    both = deskmate("docs", "delete", "hr-docs/handbook.md", env=cli_env)
    assert both.returncode == 2
    assert "a document of several departments (hr, ops)" in both.stderr

    deleted = deskmate("docs", "delete", "hr-docs/handbook.md", "--department", "hr", env=cli_env)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.startswith("deleted document ")
    assert "'Employee Handbook' (hr): 3 passages out of retrieval" in deleted.stdout

    listing = deskmate("docs", "list", env=cli_env).stdout.splitlines()
    ops_handbook = next(line for line in listing if "handbook.md" in line)
    assert ops_handbook.split()[1] == "ops"
    document_id = ops_handbook.split()[0]
    cited = deskmate("docs", "cited", document_id, env=cli_env)
    assert cited.returncode == 0, cited.stderr
    assert cited.stdout.strip() == (
        f"(no answer has cited document {document_id} 'Employee Handbook' yet)"
    )
    assert deskmate("docs", "delete", document_id, env=cli_env).returncode == 0

    missing = deskmate("docs", "delete", document_id, env=cli_env)
    assert missing.returncode == 1
    assert missing.stderr.strip() == f"deskmate docs: no document {document_id}"
