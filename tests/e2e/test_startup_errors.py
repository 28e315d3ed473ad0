"""Start-up mistakes an operator makes, through the real `deskmate` command: each one is a
single line on stderr that names the problem, a non-zero exit and no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest

from tests.support import DESKMATE


def deskmate(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DESKMATE, *args], env=env, capture_output=True, text=True, timeout=90, check=False
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql://deskmate:s3cret@db:notaport/deskmate", "port 'notaport'"),
        ("postgresql://deskmate:s3cret@db:99999/deskmate", "port '99999'"),
        ("postgresql://deskmate:s3cret@[::1/deskmate", "[::1 has no closing ]"),
    ],
    ids=["port-not-a-number", "port-out-of-range", "unclosed-bracket"],
)
@pytest.mark.parametrize("command", [["migrate"], ["serve", "--port", "0"], ["users", "list"]])
def test_a_malformed_database_url_is_one_line_naming_it(
    url: str, problem: str, command: list[str], tmp_path: os.PathLike[str]
) -> None:
    env = {**os.environ, "DATABASE_URL": url, "DESKMATE_DATA_DIR": str(tmp_path)}
    result = deskmate(*command, env=env)
    assert result.returncode == 1
    line = one_line(result)
    assert line.startswith("deskmate: invalid setting DATABASE_URL:")
    assert problem in line
    assert "s3cret" not in result.stderr  # the URL's password is never repeated


def test_serve_on_a_busy_port_says_so_at_once(cli_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        result = deskmate("serve", "--port", str(port), env=cli_env)
        elapsed = time.monotonic() - started
    assert result.returncode == 1
    line = one_line(result)
    assert line == (
        f"deskmate serve: port {port} on 127.0.0.1 is in use (another deskmate?); "
        "choose another with --port"
    )
    assert elapsed < 20  # reported before the database and the model are started
