"""Fixtures for every tier: no internet, a clean environment, and (only for the tests that ask
for them) one embedded PostgreSQL per session with a fresh database per test, and fake Claude and
Slack servers.

The PostgreSQL machinery lives in tests/support/postgres.py and is imported inside the fixtures
that need it: collecting the suite, and running tests/unit, never starts or imports it.

`pytest --pgbouncer` (or DESKMATE_TEST_PGBOUNCER=1) puts a real PgBouncer in transaction mode
between the tests and their databases (`make test-pgbouncer`).
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from bot.settings import Settings, load_settings
from tests.support import TEST_DIMENSION

if TYPE_CHECKING:
    from storage.database import Database

_LOCAL_HOSTS = {None, "localhost", "127.0.0.1", "::1", "0.0.0.0", ""}
PGBOUNCER_ENV = "DESKMATE_TEST_PGBOUNCER"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--pgbouncer",
        action="store_true",
        default=os.environ.get(PGBOUNCER_ENV, "") not in ("", "0"),
        help=f"reach the test databases through PgBouncer (or {PGBOUNCER_ENV}=1)",
    )


# --- no internet -------------------------------------------------------------------------------


class InternetAccessError(AssertionError):
    """A test tried to reach a host that is not this machine."""


def _guarded_getaddrinfo(original):  # type: ignore[no-untyped-def]
    def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        name = host.decode() if isinstance(host, bytes) else host
        if name not in _LOCAL_HOSTS and not str(name).startswith("127."):
            raise InternetAccessError(f"test tried to resolve {name!r}: tests stay on this machine")
        return original(host, *args, **kwargs)

    return getaddrinfo


@pytest.fixture(autouse=True, scope="session")
def no_internet() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", _guarded_getaddrinfo(socket.getaddrinfo))
        yield


# --- a clean environment -----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def clean_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Settings come from the test, never from the developer's shell or `.env`. With
    --pgbouncer every database URL of the run goes through PgBouncer, so settings a test makes
    itself (and the commands it starts) say so too."""
    names = {name.upper() for name in Settings.model_fields}
    for name in list(os.environ):
        upper = name.upper()
        if upper in names or upper.startswith("CONNECTIONS__") or upper.startswith("SLACK_"):
            monkeypatch.delenv(name, raising=False)
    if request.config.getoption("--pgbouncer"):
        monkeypatch.setenv("DATABASE_POOLER", "pgbouncer")
    monkeypatch.chdir(tmp_path)


# --- PostgreSQL --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The session's embedded PostgreSQL, started by the first test that needs a database."""
    from tests.support.postgres import start_server

    server = start_server(tmp_path_factory.mktemp("pg") / "pgdata")
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def pgbouncer(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """With --pgbouncer, the PgBouncer every test database is reached through; else None."""
    if not request.config.getoption("--pgbouncer"):
        return None
    from tests.support.postgres import pgbouncer_available, start_pgbouncer

    if not pgbouncer_available():
        pytest.fail("--pgbouncer needs the pgbouncer program: apt-get install -y pgbouncer")
    server = request.getfixturevalue("pg_server")
    bouncer = start_pgbouncer(server, tmp_path_factory.mktemp("pgbouncer"))
    request.addfinalizer(bouncer.stop)
    return bouncer


@pytest.fixture
def fresh_database(pg_server: Any) -> Iterator[str]:
    """The URL of an empty database (no migrations): for migration tests. Always the server
    itself: these tests drive the migrations with connections of their own."""
    from tests.support.postgres import database

    yield from database(pg_server, template="template0")


@pytest.fixture
def database_url(pg_server: Any, pgbouncer: Any) -> Iterator[str]:
    """The URL of a migrated database that only this test uses."""
    from tests.support.postgres import database

    yield from database(pg_server, bouncer=pgbouncer)


@pytest.fixture
def database_pooler(pgbouncer: Any) -> str:
    """DATABASE_POOLER for the settings of this run."""
    return "none" if pgbouncer is None else "pgbouncer"


@pytest.fixture
def settings(database_url: str, database_pooler: str, tmp_path: Path) -> Settings:
    """Settings for one test's database. The scheduler loop is off: tests that are about it
    turn it on, the others must not see it post or spawn work on its own clock."""
    return load_settings(
        env_file=None,
        database_url=database_url,
        database_pooler=database_pooler,
        deskmate_data_dir=tmp_path / "data",
        embedding_provider="hash",  # tests about meaning choose their embedder themselves
        embedding_dimension=TEST_DIMENSION,
        scheduler_enabled=False,
    )


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    from storage.database import Database

    database = Database(settings.database)
    await database.start()
    try:
        yield database
    finally:
        await database.stop()


@pytest.fixture
def cli_env(database_url: str, database_pooler: str, tmp_path: Path) -> dict[str, str]:
    """Environment for running the real `deskmate` command against this test's database."""
    env = {
        k: v for k, v in os.environ.items() if not k.upper().startswith(("SLACK_", "ANTHROPIC_"))
    }
    env.update(
        DATABASE_URL=database_url,
        DATABASE_POOLER=database_pooler,
        DESKMATE_DATA_DIR=str(tmp_path / "data"),
        EMBEDDING_PROVIDER="hash",
        EMBEDDING_DIMENSION=str(TEST_DIMENSION),
        PYTHONPATH=str(Path(__file__).resolve().parents[1]),
    )
    return env


# --- fake Claude -------------------------------------------------------------------------------


@pytest.fixture
async def fake_anthropic():  # type: ignore[no-untyped-def]
    """A running fake Messages API; `fake_anthropic.url` is its base URL."""
    from aiohttp import web

    from tests.support.fakes.anthropic_server import FakeAnthropic

    fake = FakeAnthropic()
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    await runner.cleanup()


# --- fake Slack --------------------------------------------------------------------------------


@pytest.fixture
async def fake_slack():  # type: ignore[no-untyped-def]
    """A running fake Slack Web API; `fake_slack.url` is the SLACK_API_URL to use."""
    from tests.support.fakes.slack_api import FakeSlack, start_fake_slack

    fake = FakeSlack()
    runner = await start_fake_slack(fake)
    yield fake
    await runner.cleanup()
