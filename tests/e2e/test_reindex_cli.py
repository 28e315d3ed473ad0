"""`deskmate reindex`, the real command: from `hash` to the default embedder, then the service's
commands start with the new settings and refuse the old ones."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.support import DESKMATE
from tests.support.documents import write_folder


def deskmate(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DESKMATE, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_help_and_a_bad_batch_size() -> None:
    shown = subprocess.run(
        [*DESKMATE, "reindex", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert shown.returncode == 0
    assert shown.stdout.startswith("usage: deskmate reindex")
    bad = subprocess.run(
        [*DESKMATE, "reindex", "--batch-size", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1
    assert "0 is not between 1 and 2048" in bad.stderr


def test_reindex_from_hash_to_the_default(cli_env: dict[str, str], tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "hr-docs")
    ingested = deskmate("ingest", str(folder), "--department", "hr", env=cli_env)
    assert ingested.returncode == 0, ingested.stderr
    default = {k: v for k, v in cli_env.items() if not k.startswith("EMBEDDING_")}

    refused = deskmate("docs", "list", env=default)
    assert refused.returncode == 1
    assert "run `deskmate reindex`" in refused.stderr.strip().splitlines()[-1]

    result = deskmate("reindex", "--batch-size", "3", env=default)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    summary = re.fullmatch(
        r"re-embedded (\d+) chunks and 0 memories with minilm all-MiniLM-L6-v2-int8 "
        r"\(384 dimensions\); the database held hash features-v1 \(384 dimensions\) before\n",
        result.stdout,
    )
    assert summary is not None, result.stdout
    assert int(summary.group(1)) > 0

    assert deskmate("docs", "list", env=default).returncode == 0
    old = deskmate("docs", "list", env=cli_env)
    assert old.returncode == 1
    assert "holds vectors of minilm all-MiniLM-L6-v2-int8 (384 dimensions)" in old.stderr

    again = deskmate("reindex", env=default)
    assert again.returncode == 0
    assert again.stdout.startswith("nothing to re-embed")
