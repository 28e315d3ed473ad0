"""Migrations by the real `deskmate migrate`: two commands started together, and the embedding
dimension guard."""

from __future__ import annotations

import subprocess

from tests.support import DESKMATE


def test_two_migrate_commands_started_together(fresh_database: str, cli_env: dict) -> None:
    cli_env["DATABASE_URL"] = fresh_database
    procs = [
        subprocess.Popen(
            [*DESKMATE, "migrate"],
            env=cli_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    stdout = sorted(out for out, _ in outputs)
    assert stdout[0].startswith("applied ")
    assert stdout[1].strip() == "the database is up to date"


def test_dimension_guard_from_the_command_line(cli_env: dict) -> None:
    cli_env["EMBEDDING_DIMENSION"] = "512"
    result = subprocess.run(
        [*DESKMATE, "migrate"], env=cli_env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("deskmate migrate: the database holds vectors of hash")
    assert "run `deskmate reindex`" in lines[-1]
    assert "Traceback" not in result.stderr
