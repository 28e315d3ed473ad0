"""`deskmate serve` as a real process on the embedded PostgreSQL: ready, shared, restartable."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.support import DESKMATE


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _start(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [*DESKMATE, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited early: {proc.communicate()}")
        if _get(f"http://127.0.0.1:{port}/readyz") == 200:
            return proc
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("serve did not become ready within 60 s")


def _stop(proc: subprocess.Popen[str], signum: int) -> tuple[int, str, str]:
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err


def _postmaster_running(data_dir: Path) -> bool:
    pid_file = data_dir / "pgdata" / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_serve_on_embedded_database_survives_restarts(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {
        **os.environ,
        "DESKMATE_DATA_DIR": str(data_dir),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    port = _free_port()

    server = _start(env, port)
    try:
        assert _get(f"http://127.0.0.1:{port}/healthz") == 200
        # A second process on the same data dir joins the running server…
        added = subprocess.run(
            [*DESKMATE, "users", "add", "ana@example.com", "--departments", "sales"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert added.returncode == 0, added.stderr
        # …and leaving does not stop it under the service's feet.
        assert _get(f"http://127.0.0.1:{port}/readyz") == 200
    finally:
        code, out, err = _stop(server, signal.SIGINT)
    assert code == 0, err
    assert "deskmate is listening on" in out
    assert "Traceback" not in err
    assert not _postmaster_running(data_dir)  # stopped cleanly with the last process

    server = _start(env, port)
    try:
        listing = subprocess.run(
            [*DESKMATE, "users", "list"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert "ana@example.com" in listing.stdout  # the data survived the restart
    finally:
        code, _, err = _stop(server, signal.SIGTERM)
    assert code == 0, err
    assert not _postmaster_running(data_dir)
