"""The custom_sql sandbox on a real PostgreSQL: every escape that was found is refused when the
rule is saved, and would not work even if the check let it through, because the query runs on a
connection of its own, logged in as a role that reads only its tenant's measurement views."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import asyncpg
import pytest

from bot.alerts.rules import AlertRules
from bot.errors import UsageError
from storage import alert_metrics, alert_sql
from storage.alert_sql import CheckedQuery, CustomSQLError
from storage.alerts import NewRule
from storage.database import Database
from storage.migrate import MIGRATION_LOCK_KEY

NOW = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)
READER = "deskmate_alert_sql"


@pytest.fixture
async def two_tenants(db: Database) -> int:
    """Tenant 1 has 1 question, 1 memory and 1 message; tenant 2 has 3 questions."""
    async with db.pool.acquire() as conn:
        other = await conn.fetchval(
            "INSERT INTO tenants (slug, name) VALUES ('acme', 'Acme') RETURNING id"
        )
        for tenant in (1, other, other, other):
            await conn.execute(
                "INSERT INTO query_log (tenant_id, platform, query_text, answer_status, "
                "created_at) VALUES ($1, 'web', 'my salary?', 'answered', $2)",
                tenant,
                NOW - dt.timedelta(minutes=1),
            )
    return int(other)


async def measure(db: Database, sql: str, tenant_id: int = 1, **options: int) -> float | None:
    return await alert_metrics.custom_metric(
        db, sql, tenant_id, NOW - dt.timedelta(hours=1), NOW, **options
    )


def custom(sql: str) -> NewRule:
    return NewRule(name="custom", metric_type="custom_sql", condition="gt", threshold=1,
                   custom_sql=sql)  # fmt: skip


# -- the escapes that were found, refused when the rule is saved ---------------------------------

ESCAPES = [
    # undoing SET LOCAL ROLE
    ("SELECT count(*) FROM query_log WHERE set_config('role', session_user, true) IS NOT NULL",
     "set_config() is not allowed"),
    # reading another tenant from a CTE
    ("WITH t AS (SELECT set_config('deskmate.tenant_id', '2', true)) "
     "SELECT count(*) FROM query_log, t", "set_config() is not allowed"),
    # a tenant setting that persists on the connection
    ("SELECT count(*) FROM query_log WHERE set_config('deskmate.tenant_id', '2', false) = '2'",
     "set_config() is not allowed"),
    # switching role after a delay
    ("SELECT CASE WHEN pg_sleep(1) IS NULL THEN "
     "set_config('role', 'deskmate_alert_reader', false)::int END", "pg_sleep() is not allowed"),
    ("SELECT count(*) FROM session_messages", "session_messages is not an alert view"),
    ("SELECT count(*) FROM memories", "memories is not an alert view"),
    ("SELECT count(*) FROM public.query_log", "public.query_log is outside the alert views"),
    ("SELECT length(pg_read_file('/etc/passwd'))", "pg_read_file() is not allowed"),
    (f"SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})::text::int",
     "pg_advisory_lock() is not allowed"),
    # the same lock, called as a field of a number
    (f"SELECT count(({MIGRATION_LOCK_KEY}::bigint).pg_advisory_lock)",
     "(expression).name is not allowed"),
    ("SELECT current_setting('deskmate.tenant_id')::int", "current_setting() is not allowed"),
    ("WITH pg_stat_activity AS (SELECT * FROM pg_stat_activity) "
     "SELECT count(*) FROM pg_stat_activity", "pg_stat_activity is not an alert view"),
    ("SELECT count(*) FROM alert_sandbox.tickets", "alert_sandbox.tickets is outside"),
    ("DELETE FROM query_log", "the query tries to write"),
    ("WITH gone AS (DELETE FROM query_log RETURNING 1) SELECT count(*) FROM gone",
     "the query tries to write"),
    ("SELECT count(*) FROM query_log FOR UPDATE", "locks rows"),
    ("SET ROLE postgres", "must be a single SELECT"),
]  # fmt: skip


@pytest.mark.parametrize(("sql", "reason"), ESCAPES)
async def test_an_escape_is_refused_when_the_rule_is_saved(
    db: Database, two_tenants: int, sql: str, reason: str
) -> None:
    rules = AlertRules(db, actor="test")
    with pytest.raises(UsageError) as refused:
        await rules.add("default", custom(sql), now=NOW)
    assert str(refused.value).startswith("custom_sql rejected: ")
    assert reason in str(refused.value)
    async with db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM alert_rules") == 0
        assert await conn.fetchval("SELECT count(*) FROM query_log") == 4


async def test_a_rule_sees_its_own_organisation_only(db: Database, two_tenants: int) -> None:
    assert await measure(db, "SELECT count(*) FROM query_log") == 1
    assert await measure(db, "SELECT count(*) FROM query_log", two_tenants) == 3
    # A filter naming the other tenant finds nothing: the view has fixed the tenant already.
    assert await measure(db, f"SELECT count(*) FROM query_log WHERE tenant_id = {two_tenants}") == 0
    assert await measure(db, "SELECT id FROM tenant", two_tenants) == two_tenants


async def test_the_views_show_measurements_not_what_people_wrote(
    db: Database, two_tenants: int
) -> None:
    with pytest.raises(CustomSQLError, match='column "query_text" does not exist'):
        await measure(db, "SELECT count(query_text) FROM query_log")


# -- the second wall: the same escapes with the check switched off --------------------------------


@pytest.fixture
def unchecked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run queries as given, as if the parser had a hole."""
    monkeypatch.setattr(alert_sql, "check", lambda sql: CheckedQuery(sql.strip()))


async def test_the_role_cannot_be_changed_from_inside(
    db: Database, two_tenants: int, unchecked: None
) -> None:
    with pytest.raises(CustomSQLError, match=r"may not .*permission denied to set role"):
        await measure(db, "SELECT set_config('role', 'postgres', false)::int")
    # Setting it to itself changes nothing: the tables stay out of reach.
    with pytest.raises(CustomSQLError, match="permission denied for table memories"):
        await measure(
            db,
            "SELECT count(*) FROM (SELECT set_config('role', session_user, true)) s, "
            "public.memories",
        )
    with pytest.raises(CustomSQLError, match="permission denied"):
        await measure(db, "SELECT length(pg_read_file('/etc/passwd'))")


async def test_the_tenant_cannot_be_changed_from_inside(
    db: Database, two_tenants: int, unchecked: None
) -> None:
    switch = (
        "WITH s AS MATERIALIZED (SELECT set_config('deskmate.tenant_id', '{}', {}) AS t) "
        "SELECT count(*) FROM s, query_log"
    )
    assert await measure(db, switch.format(two_tenants, "true")) == 1
    assert await measure(db, switch.format(two_tenants, "false")) == 1
    # Nor does it persist: the next rule of tenant 1 still sees tenant 1.
    assert await measure(db, "SELECT count(*) FROM query_log") == 1


async def test_nothing_a_query_does_outlives_its_connection(
    db: Database, two_tenants: int, unchecked: None
) -> None:
    """What broke a replica: the pool's connections keep their role and settings, and a lock
    the query took is gone once the evaluation ends."""
    before = await _pool_sessions(db)
    sneaky = (
        "SELECT count(*) FROM (SELECT pg_sleep(0.2), set_config('role', session_user, false), "
        f"set_config('deskmate.tenant_id', '{two_tenants}', false), "
        f"pg_advisory_lock({MIGRATION_LOCK_KEY})) s"
    )
    assert await measure(db, sneaky) == 1
    assert await _pool_sessions(db) == before
    async with db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", MIGRATION_LOCK_KEY)
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
        assert await conn.fetchval("SELECT count(*) FROM alert_instances") == 0
    await _no_reader_left(db)


async def _pool_sessions(db: Database) -> list[tuple[str, str]]:
    sessions = []
    for _ in range(db.pool.get_max_size()):
        async with db.pool.acquire() as conn:
            sessions.append(
                (
                    await conn.fetchval("SELECT current_user"),
                    await conn.fetchval("SELECT current_setting('deskmate.tenant_id', true)"),
                )
            )
    return sessions


async def _no_reader_left(db: Database) -> None:
    """No session of the reader role is left, nor a ticket (the server ends a closed session a
    moment after the client)."""
    async with db.pool.acquire() as conn:
        for _ in range(50):
            left = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", READER
            )
            if not left:
                break
            await asyncio.sleep(0.05)
        assert left == 0
        assert await conn.fetchval("SELECT count(*) FROM alert_sandbox.tickets") == 0


async def test_a_slow_query_is_stopped_and_its_connection_closed(
    db: Database, two_tenants: int
) -> None:
    slow = "SELECT count(*) FROM generate_series(1, 100000) a, generate_series(1, 100000) b"
    with pytest.raises(CustomSQLError, match="ran longer than 300 ms"):
        await measure(db, slow, timeout_ms=300)
    await _no_reader_left(db)


async def test_the_reader_alone_sees_nothing_and_writes_nothing(db: Database) -> None:
    """Logged in as the reader without a ticket (as anyone who learnt its password would be)."""
    async with db.pool.acquire() as conn:
        stored = await conn.fetchrow("SELECT role, password FROM alert_sandbox.reader")
        await conn.execute(
            "INSERT INTO query_log (tenant_id, platform, query_text, answer_status) "
            "VALUES (1, 'web', 'q', 'answered')"
        )
    reader = await db.connect_as(stored["role"], stored["password"], {})
    try:
        assert await reader.fetchval("SELECT count(*) FROM query_log") == 0
        assert await reader.fetchval("SELECT count(*) FROM tenant") == 0
        for sql, error in (
            ("SELECT count(*) FROM alert_sandbox.tickets", asyncpg.InsufficientPrivilegeError),
            ("SELECT count(*) FROM public.query_log", asyncpg.InsufficientPrivilegeError),
            ("SET ROLE postgres", asyncpg.InsufficientPrivilegeError),
            ("SELECT alert_sandbox.new_reader_password()", asyncpg.InsufficientPrivilegeError),
            ("CREATE TEMP TABLE t (x int)", asyncpg.ReadOnlySQLTransactionError),
        ):
            with pytest.raises(error):
                await reader.execute(sql)
    finally:
        await reader.close()


async def test_the_views_are_the_ones_the_check_allows(db: Database) -> None:
    """storage/alert_sql.py lists the views and their columns; the migration makes them. No
    column is named like a function: `x.name` with no such column calls function `name`."""
    async with db.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'alert_views'"
        )
        clashes = await conn.fetch(
            "SELECT DISTINCT proname FROM pg_proc WHERE proname = ANY($1::text[])",
            sorted(alert_sql.COLUMNS),
        )
    made: dict[str, set[str]] = {}
    for row in rows:
        made.setdefault(row["table_name"], set()).add(row["column_name"])
    assert made == {view: set(columns) for view, columns in alert_sql.VIEWS.items()}
    assert [r["proname"] for r in clashes] == []


async def test_every_allowed_function_exists(db: Database) -> None:
    """A name on the allow-list that PostgreSQL lacks would be a name an extension could take."""
    async with db.pool.acquire() as conn:
        found = await conn.fetch(
            "SELECT DISTINCT proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'pg_catalog' AND proname = ANY($1::text[])",
            sorted(alert_sql.FUNCTIONS),
        )
    assert {r["proname"] for r in found} == alert_sql.FUNCTIONS


# -- rules that would never be delivered -----------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "reason"),
    [
        ("slack:C-OPS", "slack is not configured in this deskmate, so nothing would post to "
                        "slack:C-OPS: set SLACK_BOT_TOKEN"),
        ("teams:19:abc", "teams is not configured"),
        ("web:ops", "'web:ops' is no web channel: write it like web:#ops"),
    ],
)  # fmt: skip
async def test_a_rule_for_a_platform_that_is_off_is_refused(
    db: Database, channel: str, reason: str
) -> None:
    rules = AlertRules(db, actor="test", platforms=("web",))
    rule = NewRule(name="volume", metric_type="query_volume", condition="gt", threshold=1,
                   notification_channels=("web:#ops", channel))  # fmt: skip
    with pytest.raises(UsageError) as refused:
        await rules.add("default", rule, now=NOW)
    assert reason in str(refused.value)
    async with db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM alert_rules") == 0


async def test_a_password_another_database_changed_is_renewed(
    db: Database, two_tenants: int
) -> None:
    """The role belongs to the server, its password to each database that migrated: when
    another database of the server has set it since, the next evaluation sets a new one."""
    async with db.pool.acquire() as conn:
        before = await conn.fetchval("SELECT password FROM alert_sandbox.reader")
        hba = Path(await conn.fetchval("SHOW hba_file"))
        trusting = _rewrite(hba, f"local all {READER} scram-sha-256\n")
        await conn.execute("SELECT pg_reload_conf()")
        await conn.execute(f"ALTER ROLE {READER} PASSWORD 'set-by-another-database'")
    try:
        await _passwords_are_checked(db)
        assert await measure(db, "SELECT count(*) FROM query_log") == 1
    finally:
        _rewrite(hba, "", trusting)
        async with db.pool.acquire() as conn:
            await conn.execute("SELECT pg_reload_conf()")
    async with db.pool.acquire() as conn:
        stored = await conn.fetchval("SELECT password FROM alert_sandbox.reader")
    assert stored not in (before, "set-by-another-database") and len(stored) == 64


async def _passwords_are_checked(db: Database) -> None:
    """The server reloads its configuration a moment after being asked to."""
    for _ in range(50):
        try:
            reader = await db.connect_as(READER, "wrong", {})
        except asyncpg.InvalidPasswordError:
            return
        await reader.close()
        await asyncio.sleep(0.05)
    raise AssertionError("the server still trusts the reader")


def _rewrite(hba: Path, first: str, rest: str | None = None) -> str:
    """Put `first` before the rules of the server's hba file (or before `rest`); return them."""
    rules = hba.read_text() if rest is None else rest
    hba.write_text(first + rules)
    return rules


async def test_a_role_of_that_name_with_more_rights_is_stripped_by_the_migration(
    fresh_database: str,
) -> None:
    from storage.migrate import apply_migrations
    from tests.support import TEST_DIMENSION

    conn = await asyncpg.connect(fresh_database)
    try:
        await conn.execute(f"GRANT pg_read_server_files TO {READER}")
        await apply_migrations(conn, embedding_dimension=TEST_DIMENSION)
        memberships = await conn.fetchval(
            "SELECT count(*) FROM pg_auth_members WHERE member = $1::regrole", READER
        )
        readable = await conn.fetchval(
            "SELECT has_table_privilege($1, 'alert_views.query_log', 'SELECT')", READER
        )
    finally:
        await conn.close()
    assert memberships == 0 and readable


async def test_without_the_reader_role_custom_rules_are_refused_with_the_reason(
    db: Database,
) -> None:
    """What a server whose deskmate user may not create roles gets: no stored password."""
    async with db.pool.acquire() as conn:
        await conn.execute("DELETE FROM alert_sandbox.reader")
    with pytest.raises(UsageError, match="custom SQL rules are off on this database"):
        await AlertRules(db, actor="test").add("default", custom("SELECT 1"), now=NOW)


async def test_a_rule_saved_before_the_sandbox_is_checked_again_when_it_runs(
    db: Database, two_tenants: int
) -> None:
    """A rule saved by an older deskmate is never run as it is: its evaluation is an error that
    says why (and is reported to its channels once)."""
    from bot.alerts.evaluator import AlertEvaluator
    from bot.outbound import Senders
    from storage import alerts

    async with db.pool.acquire() as conn:
        await alerts.add_rule(conn, 1, custom("SELECT count(*) FROM users"), NOW)
    await AlertEvaluator(db, Senders(), clock=lambda: NOW, replica="r1").run_due()
    async with db.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT outcome, error FROM alert_evaluations")
    assert row["outcome"] == "error"
    assert row["error"].startswith("users is not an alert view")
