"""What makes the unit tier real: its tests get no database, start no process, open no socket.

A unit test that asks for a database fixture (`db`, `settings`, `database_url`, `cli_env`, …)
fails before any PostgreSQL starts; one that spawns a process or connects or binds a socket fails
at that call. Such a test belongs in tests/integration or tests/e2e.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from typing import NoReturn

import pytest


@pytest.fixture(scope="session")
def pg_server() -> NoReturn:
    """Every database fixture needs this one: here it refuses, so no server ever starts."""
    pytest.fail("unit tests run without PostgreSQL: move this test to tests/integration")


def _refuse(what: str):  # type: ignore[no-untyped-def]
    def refuse(*args: object, **kwargs: object) -> NoReturn:
        pytest.fail(f"unit tests {what}: move this test to tests/integration or tests/e2e")

    return refuse


@pytest.fixture(autouse=True)
def no_processes_or_sockets() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(subprocess.Popen, "__init__", _refuse("start no processes"))
        for method in ("connect", "connect_ex", "bind"):
            patch.setattr(socket.socket, method, _refuse("open no sockets"))
        yield
