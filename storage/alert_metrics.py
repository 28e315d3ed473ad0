"""The metrics alert rules watch, computed in SQL over a window of the service's own tables.

Every query returns NULL when the window holds nothing to measure: "no data" is its own result,
never 0. Counts (`query_volume`, `delivery_failures`) are the exception: zero of something is
a measurement.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import asyncpg

ALERT_READER_ROLE = "deskmate_alert_reader"
CUSTOM_SQL_TIMEOUT_MS = 2000

# $1 tenant, $2 window start, $3 window end (exclusive start, inclusive end).
METRIC_SQL = {
    "llm_error_rate": """
        SELECT (count(*) FILTER (WHERE status = 'error'))::float8 / nullif(count(*), 0)
        FROM llm_call_metrics
        WHERE tenant_id = $1 AND created_at > $2 AND created_at <= $3
    """,
    "llm_latency_p95_ms": """
        SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)::float8
        FROM llm_call_metrics
        WHERE tenant_id = $1 AND created_at > $2 AND created_at <= $3
          AND status = 'ok' AND latency_ms IS NOT NULL
    """,
    "response_time_p95_ms": """
        SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY response_time_ms)::float8
        FROM query_log
        WHERE tenant_id = $1 AND created_at > $2 AND created_at <= $3
          AND response_time_ms IS NOT NULL AND answer_status <> 'command'
    """,
    "llm_cost_usd": """
        SELECT sum(cost_usd)::float8 FROM llm_call_metrics
        WHERE tenant_id = $1 AND created_at > $2 AND created_at <= $3
    """,
    "query_volume": """
        SELECT count(*)::float8 FROM query_log
        WHERE tenant_id = $1 AND created_at > $2 AND created_at <= $3
          AND answer_status <> 'command'
    """,
    "no_answer_rate": """
        SELECT (count(*) FILTER (WHERE NOT grounded))::float8 / nullif(count(*), 0)
        FROM query_log
        WHERE tenant_id = $1 AND created_at > $2 AND created_at <= $3
          AND answer_status IN ('answered', 'offline', 'no_context')
    """,
    "negative_feedback_rate": """
        SELECT (count(*) FILTER (WHERE rating < 0))::float8 / nullif(count(*), 0)
        FROM answer_feedback
        WHERE tenant_id = $1 AND created_at > $2 AND created_at <= $3
    """,
    "delivery_failures": """
        SELECT count(*)::float8 FROM scheduled_runs
        WHERE tenant_id = $1 AND status = 'failed' AND failed_at > $2 AND failed_at <= $3
    """,
}


class CustomSQLError(Exception):
    """A custom_sql rule's query cannot be used; the message says why, in one sentence."""


async def builtin_metric(
    conn: asyncpg.Connection, metric: str, tenant_id: int, start: dt.datetime, end: dt.datetime
) -> float | None:
    value = await conn.fetchval(METRIC_SQL[metric], tenant_id, start, end)
    return float(value) if value is not None else None


def _single_statement(sql: str) -> str:
    body = sql.strip().rstrip(";").strip()
    if not body:
        raise CustomSQLError("the query is empty")
    if ";" in re.sub(r"'[^']*'", "", body):
        raise CustomSQLError("give exactly one statement")
    return body


async def custom_metric(
    conn: asyncpg.Connection,
    sql: str,
    tenant_id: int,
    start: dt.datetime,
    end: dt.datetime,
    *,
    timeout_ms: int = CUSTOM_SQL_TIMEOUT_MS,
) -> float | None:
    """Run a rule's own query: one number, read-only, time-limited, as a role that cannot write
    and only sees this tenant's measurements. `$1` … `$3` are tenant, window start and end.

    Raises CustomSQLError for a query that writes, fails, times out, or does not return exactly
    one row of one number (NULL counts as no data)."""
    body = _single_statement(sql)
    uses = {int(n) for n in re.findall(r"\$(\d+)", body)}
    if uses - {1, 2, 3}:
        raise CustomSQLError("only $1 (tenant), $2 (window start) and $3 (window end) exist")
    args = [tenant_id, start, end][: max(uses, default=0)]
    try:
        async with conn.transaction(readonly=True):
            await conn.execute(f"SET LOCAL statement_timeout = {int(timeout_ms)}")
            await conn.execute("SELECT set_config('deskmate.tenant_id', $1, true)", str(tenant_id))
            await conn.execute(f"SET LOCAL ROLE {ALERT_READER_ROLE}")
            rows = await conn.fetch(body, *args)
    except asyncpg.QueryCanceledError:
        raise CustomSQLError(f"the query ran longer than {timeout_ms} ms") from None
    except asyncpg.ReadOnlySQLTransactionError:
        raise CustomSQLError("the query tries to write; alert queries may only read") from None
    except asyncpg.InsufficientPrivilegeError as exc:
        raise CustomSQLError(f"the query reads or writes what it may not ({exc})") from None
    except asyncpg.PostgresError as exc:
        raise CustomSQLError(f"the query failed: {exc}") from None
    return _one_number(rows)


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
