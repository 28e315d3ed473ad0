"""The metrics alert rules watch, computed in SQL over a window of the service's own tables,
and the sandbox a custom_sql rule's own query runs in (migration 0012 says why it is one).

Every query returns NULL when the window holds nothing to measure: "no data" is its own result,
never 0. Counts (`query_volume`, `delivery_failures`) are the exception: zero of something is
a measurement.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import NamedTuple

import asyncpg

from storage import alert_sql
from storage.alert_sql import CustomSQLError
from storage.database import Database

__all__ = ["CustomSQLError", "Window", "builtin_metric", "builtin_metrics", "custom_metric"]

CUSTOM_SQL_TIMEOUT_MS = 2000
LOCK_TIMEOUT_MS = 500
WORK_MEM = "8MB"
# The client's own bound, past the server's statement timeout, for a server that does not answer.
TIMEOUT_GRACE_S = 1.0

# {tenant}, {start}, {end}: the tenant and the window (exclusive start, inclusive end), filled
# with bind parameters for one metric and with the batch's columns for many (`builtin_metrics`).
_METRIC_TEMPLATES = {
    "llm_error_rate": """
        SELECT (count(*) FILTER (WHERE status = 'error'))::float8 / nullif(count(*), 0)
        FROM llm_call_metrics
        WHERE tenant_id = {tenant} AND created_at > {start} AND created_at <= {end}
    """,
    "llm_latency_p95_ms": """
        SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)::float8
        FROM llm_call_metrics
        WHERE tenant_id = {tenant} AND created_at > {start} AND created_at <= {end}
          AND status = 'ok' AND latency_ms IS NOT NULL
    """,
    "response_time_p95_ms": """
        SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY response_time_ms)::float8
        FROM query_log
        WHERE tenant_id = {tenant} AND created_at > {start} AND created_at <= {end}
          AND response_time_ms IS NOT NULL AND answer_status <> 'command'
    """,
    "llm_cost_usd": """
        SELECT sum(cost_usd)::float8 FROM llm_call_metrics
        WHERE tenant_id = {tenant} AND created_at > {start} AND created_at <= {end}
    """,
    "query_volume": """
        SELECT count(*)::float8 FROM query_log
        WHERE tenant_id = {tenant} AND created_at > {start} AND created_at <= {end}
          AND answer_status <> 'command'
    """,
    "no_answer_rate": """
        SELECT (count(*) FILTER (WHERE NOT grounded))::float8 / nullif(count(*), 0)
        FROM query_log
        WHERE tenant_id = {tenant} AND created_at > {start} AND created_at <= {end}
          AND answer_status IN ('answered', 'offline', 'no_context')
    """,
    "negative_feedback_rate": """
        SELECT (count(*) FILTER (WHERE rating < 0))::float8 / nullif(count(*), 0)
        FROM answer_feedback
        WHERE tenant_id = {tenant} AND created_at > {start} AND created_at <= {end}
    """,
    "delivery_failures": """
        SELECT count(*)::float8 FROM scheduled_runs
        WHERE tenant_id = {tenant} AND status = 'failed'
          AND failed_at > {start} AND failed_at <= {end}
    """,
    # The largest share used of the tenant's monthly budgets (its own, each person's), in the
    # UTC calendar month of the window's end: the window's length plays no part (migration 0018).
    "llm_budget_used_ratio": """
        SELECT max(used_ratio) FROM llm_budget_usage
        WHERE tenant_id = {tenant} AND month = date_trunc(
            'month', greatest({start}::timestamptz, {end}::timestamptz) AT TIME ZONE 'UTC')::date
    """,
}
METRIC_SQL = {
    name: sql.format(tenant="$1", start="$2", end="$3") for name, sql in _METRIC_TEMPLATES.items()
}
# One value per asked (metric, tenant, window), in the order asked: CASE runs only the branch
# of each row's metric, so a batch costs the sum of its own aggregates, in one round trip.
_BATCH_COLUMNS = {"tenant": "a.tenant_id", "start": "a.start_at", "end": "a.end_at"}
_BATCH_SQL = (
    "SELECT CASE a.metric\n"
    + "".join(
        f"    WHEN '{name}' THEN ({sql.format(**_BATCH_COLUMNS)})\n"
        for name, sql in _METRIC_TEMPLATES.items()
    )
    + "END AS value\n"
    "FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::timestamptz[])\n"
    "     WITH ORDINALITY AS a (metric, tenant_id, start_at, end_at, n)\n"
    "ORDER BY a.n"
)


class Window(NamedTuple):
    """What a built-in rule measures: its metric, for a tenant, over (start, end]."""

    metric: str
    tenant_id: int
    start: dt.datetime
    end: dt.datetime


async def builtin_metric(
    conn: asyncpg.Connection, metric: str, tenant_id: int, start: dt.datetime, end: dt.datetime
) -> float | None:
    value = await conn.fetchval(METRIC_SQL[metric], tenant_id, start, end)
    return float(value) if value is not None else None


async def builtin_metrics(
    conn: asyncpg.Connection, windows: Sequence[Window]
) -> dict[Window, float | None]:
    """Many built-in metrics in one statement; rules asking the same window share a value."""
    asked = list(dict.fromkeys(windows))
    if not asked:
        return {}
    unknown = {w.metric for w in asked} - _METRIC_TEMPLATES.keys()
    if unknown:
        raise KeyError(f"unknown metrics {sorted(unknown)}")
    rows = await conn.fetch(
        _BATCH_SQL,
        [w.metric for w in asked], [w.tenant_id for w in asked],
        [w.start for w in asked], [w.end for w in asked],
    )  # fmt: skip
    return {
        window: None if row["value"] is None else float(row["value"])
        for window, row in zip(asked, rows, strict=True)
    }


async def custom_metric(
    db: Database,
    sql: str,
    tenant_id: int,
    start: dt.datetime,
    end: dt.datetime,
    *,
    timeout_ms: int = CUSTOM_SQL_TIMEOUT_MS,
) -> float | None:
    """Run a rule's own query in the sandbox: checked first (storage/alert_sql.py), then run on
    a connection of its own that logs in as the reader role, in a read-only transaction with a
    statement timeout, over views that show this tenant only; the connection is closed after.
    `$1` … `$3` are tenant, window start and end.

    Raises CustomSQLError for a query that is refused, fails, times out, or does not return
    exactly one row of one number (NULL counts as no data)."""
    query = alert_sql.check(sql)
    reader = await _open_reader(db, timeout_ms)
    try:
        rows = await _run(db, reader, query.text, (tenant_id, start, end), timeout_ms)
    except (asyncpg.QueryCanceledError, TimeoutError):
        raise CustomSQLError(f"the query ran longer than {timeout_ms} ms") from None
    except asyncpg.ReadOnlySQLTransactionError:
        raise CustomSQLError("the query tries to write; alert queries may only read") from None
    except asyncpg.InsufficientPrivilegeError as exc:
        raise CustomSQLError(f"the query reads or does what it may not ({exc})") from None
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise CustomSQLError(f"the query failed: {exc}") from None
    finally:
        await _discard(reader)
    return _one_number(rows)


def _reader_settings(timeout_ms: int) -> dict[str, str]:
    """What the reader's session is, fixed at login (the query cannot send a SET)."""
    return {
        "search_path": alert_sql.VIEW_SCHEMA,
        "default_transaction_read_only": "on",
        "statement_timeout": str(int(timeout_ms)),
        "lock_timeout": str(LOCK_TIMEOUT_MS),
        "idle_in_transaction_session_timeout": str(int(timeout_ms) + 5000),
        "work_mem": WORK_MEM,
        "max_parallel_workers_per_gather": "0",
        "jit": "off",
        # A query still running after its connection is gone is stopped within a second.
        "client_connection_check_interval": "1000",
        "application_name": "deskmate alert rule",
    }


async def _open_reader(db: Database, timeout_ms: int) -> asyncpg.Connection:
    async with db.pool.acquire() as conn:
        stored = await conn.fetchrow("SELECT role, password FROM alert_sandbox.reader")
    if stored is None:
        raise CustomSQLError(
            "custom SQL rules are off on this database: its user could not create the "
            "deskmate_alert_sql role when it was migrated"
        )
    role, settings = stored["role"], _reader_settings(timeout_ms)
    try:
        return await db.connect_as(role, stored["password"], settings)
    except asyncpg.InvalidPasswordError:
        # Another database on the same server has set the role's password since.
        async with db.pool.acquire() as conn:
            password = await conn.fetchval("SELECT alert_sandbox.new_reader_password()")
    except (OSError, asyncpg.PostgresError) as exc:
        raise _cannot_log_in(role, exc) from None
    try:
        return await db.connect_as(role, password, settings)
    except (OSError, asyncpg.PostgresError) as exc:
        raise _cannot_log_in(role, exc) from None


def _cannot_log_in(role: str, exc: Exception) -> CustomSQLError:
    return CustomSQLError(f"cannot log in as the alert reader {role}: {exc}")


async def _run(
    db: Database,
    reader: asyncpg.Connection,
    query: str,
    window: tuple[int, dt.datetime, dt.datetime],
    timeout_ms: int,
) -> list[asyncpg.Record]:
    """The query inside one read-only transaction of the reader, between a ticket for its
    session and the ticket's withdrawal (one transaction keeps one server session, even
    behind a pooler)."""
    tenant_id, start, end = window
    async with reader.transaction(readonly=True):
        session = await reader.fetchrow(_READER_SESSION)
        await _ticket(db, _ISSUE, session["pid"], session["backend_start"], tenant_id)
        try:
            if await reader.fetchval("SELECT id FROM alert_views.tenant") != tenant_id:
                raise CustomSQLError("the alert sandbox could not be opened for this organisation")
            # Declared parameter types: a query may use $3 without $1. Prepared over the
            # extended protocol, which refuses more than one statement.
            await reader.fetch(f"PREPARE rule_query (bigint, timestamptz, timestamptz) AS\n{query}")
            return await reader.fetch(
                _execute(tenant_id, start, end), timeout=timeout_ms / 1000 + TIMEOUT_GRACE_S
            )
        finally:
            await _ticket(db, _WITHDRAW, session["pid"], session["backend_start"])


def _execute(tenant_id: int, start: dt.datetime, end: dt.datetime) -> str:
    """EXECUTE takes no bind parameters: the window goes in as literals, all three our own
    values (an int and two ISO timestamps), never text from the rule."""
    return f"EXECUTE rule_query({int(tenant_id)}, '{start.isoformat()}', '{end.isoformat()}')"


_READER_SESSION = """
    SELECT pg_backend_pid() AS pid, backend_start FROM pg_stat_get_activity(pg_backend_pid())
"""
# $1 pid, $2 backend start of the reader's session, $3 the tenant its views show.
_ISSUE = """
    INSERT INTO alert_sandbox.tickets (pid, backend_start, tenant_id) VALUES ($1, $2, $3)
    ON CONFLICT (pid) DO UPDATE
    SET backend_start = excluded.backend_start, tenant_id = excluded.tenant_id, issued_at = now()
"""
_WITHDRAW = "DELETE FROM alert_sandbox.tickets WHERE pid = $1 AND backend_start = $2"


async def _ticket(db: Database, statement: str, *args: object) -> None:
    async with db.pool.acquire() as conn:
        await conn.execute(statement, *args)


async def _discard(reader: asyncpg.Connection) -> None:
    """Close the reader's connection; it is never reused, whatever the query did to it."""
    try:
        await reader.close(timeout=1)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        reader.terminate()


def _one_number(rows: list[asyncpg.Record]) -> float | None:
    if len(rows) != 1:
        raise CustomSQLError(f"the query must return one row, not {len(rows)}")
    if len(rows[0]) != 1:
        raise CustomSQLError(f"the query must return one column, not {len(rows[0])}")
    value = rows[0][0]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise CustomSQLError(f"the query must return a number, not {type(value).__name__}")
    return float(value)
