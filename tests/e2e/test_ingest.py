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
