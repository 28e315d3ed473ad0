"""After `kill -9` of `deskmate serve`, the embedded PostgreSQL still stops with its last user.

pgserver lists the pids of the processes using the server and stops it when the last one leaves;
a killed process never leaves. Before the fix the next `deskmate serve` came up, but on Ctrl-C
left PostgreSQL running for good, listed as used by the dead pid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support import DESKMATE

READY_WITHIN_S = 60
STOPS_WITHIN_S = 30


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _serve(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*DESKMATE, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + READY_WITHIN_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited early: {proc.communicate()[1]}")
        if _status(f"http://127.0.0.1:{port}/readyz") == 200:
            return proc
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"serve was not ready within {READY_WITHIN_S} s")


def _postmaster_pid(pgdata: Path) -> int | None:
    """The running postmaster's pid, None when no server runs on `pgdata`."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)
    except PermissionError:  # the server runs as another user (pgserver does, under root)
        return pid
    except (FileNotFoundError, IndexError, ValueError, ProcessLookupError):
        return None
    return pid


def _wait_stopped(pgdata: Path) -> bool:
    deadline = time.monotonic() + STOPS_WITHIN_S
    while time.monotonic() < deadline:
        if _postmaster_pid(pgdata) is None:
            return True
        time.sleep(0.2)
    return False


def test_embedded_server_stops_with_its_last_user_after_a_kill_9(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    pgdata = data_dir / "pgdata"
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATABASE_POOLER")},
        "DESKMATE_DATA_DIR": str(data_dir),
        "EMBEDDING_PROVIDER": "hash",
        "EMBEDDING_DIMENSION": "64",
        "SCHEDULER_ENABLED": "false",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    try:
        _kill_restart_stop(env, pgdata)
    finally:
        _stop_leftover_server(pgdata)


def _kill_restart_stop(env: dict[str, str], pgdata: Path) -> None:
    killed = _serve(env, _free_port())
    postmaster = _postmaster_pid(pgdata)
    assert postmaster is not None
    killed.send_signal(signal.SIGKILL)
    killed.wait(10)

    # PostgreSQL outlives the killed process, still listed as used by it.
    assert _postmaster_pid(pgdata) == postmaster
    assert killed.pid in json.loads((pgdata / ".handle_pids.json").read_text())

    port = _free_port()
    again = _serve(env, port)
    try:
        assert _status(f"http://127.0.0.1:{port}/healthz") == 200
    finally:
        again.send_signal(signal.SIGTERM)
        _, err = again.communicate(timeout=STOPS_WITHIN_S)
    assert again.returncode == 0, err

    assert _wait_stopped(pgdata), f"PostgreSQL {postmaster} still runs after its last user left"
    assert json.loads((pgdata / ".handle_pids.json").read_text()) == []


def _stop_leftover_server(pgdata: Path) -> None:
    """A failed run must not leave its PostgreSQL behind (SIGINT: PostgreSQL's fast shutdown)."""
    pid = _postmaster_pid(pgdata)
    if pid is not None:
        os.kill(pid, signal.SIGINT)
        _wait_stopped(pgdata)
