"""The check every custom_sql alert query passes before it is saved or run: one SELECT over the
alert views, allow-listed functions and types, and a one-sentence reason when it is not."""

from __future__ import annotations

import pytest

from storage.alert_metrics import METRIC_SQL
from storage.alert_sql import MAX_LENGTH, CustomSQLError, check


@pytest.mark.parametrize("metric", sorted(METRIC_SQL))
def test_the_built_in_metrics_written_as_rules_pass(metric: str) -> None:
    assert check(METRIC_SQL[metric]).text == METRIC_SQL[metric].strip()


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) FROM query_log;",
        "SELECT avg(latency_ms) FROM alert_views.llm_call_metrics WHERE created_at > $2",
        "SELECT extract(epoch FROM now() - max(created_at)) / 60 FROM query_log",
        "SELECT count(*) FROM query_log q JOIN llm_call_metrics m ON m.query_id = q.id "
        "WHERE q.answer_status = 'error' AND m.status = 'error'",
        "WITH recent AS (SELECT * FROM rag_metrics WHERE created_at > now() - interval '1 hour') "
        "SELECT coalesce(max(top_chunk_score), 0) FROM recent",
        "SELECT n FROM (SELECT count(*) AS n FROM answer_feedback WHERE rating < 0) s",
        "SELECT count(*) FILTER (WHERE status = 'failed')::float8 / nullif(count(*), 0) "
        "FROM scheduled_runs WHERE slot BETWEEN $2 AND $3",
        "SELECT greatest(count(*), 1) FROM query_log WHERE created_at "
        "AT TIME ZONE 'UTC' > date_trunc('day', $3::timestamptz AT TIME ZONE 'UTC')",
        "SELECT count(*) FROM query_log WHERE platform IN ('slack', 'teams') "
        "AND lower(answer_status) LIKE 'no%'",
        "SELECT CASE WHEN EXISTS (SELECT 1 FROM query_log WHERE NOT grounded) THEN 1 ELSE 0 END",
        "SELECT x FROM generate_series(1, 3) x",
        "SELECT count(*) FROM query_log WHERE tenant_id = (SELECT id FROM tenant)",
    ],
)
def test_a_measurement_passes(sql: str) -> None:
    check(sql)


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        # who the query runs as, which tenant it sees
        ("SELECT set_config('role', session_user, true)", "set_config() is not allowed"),
        ("SELECT pg_catalog.set_config('role', 'x', false)", "pg_catalog.set_config()"),
        ("SELECT current_setting('deskmate.tenant_id')", "current_setting() is not allowed"),
        ("WITH s AS (SELECT set_config('deskmate.tenant_id', '2', true)) SELECT 1 FROM s",
         "set_config() is not allowed"),
        # what it reads
        ("SELECT count(*) FROM memories", "memories is not an alert view: read query_log, "),
        ("SELECT count(*) FROM public.query_log", "public.query_log is outside the alert views"),
        ("SELECT count(*) FROM mydb.alert_views.query_log", "mydb.alert_views.query_log is "),
        ("SELECT count(*) FROM pg_stat_activity", "pg_stat_activity is not an alert view"),
        ("SELECT pg_read_file('/etc/passwd')", "pg_read_file() is not allowed"),
        ("SELECT count(*) FROM lo_import('/etc/passwd')", "lo_import() is not allowed"),
        ("SELECT dblink('host=elsewhere', 'SELECT 1')", "dblink() is not allowed"),
        # side effects
        ("SELECT pg_advisory_lock(1)", "pg_advisory_lock() is not allowed"),
        ("SELECT pg_advisory_xact_lock(1)", "pg_advisory_xact_lock() is not allowed"),
        ("SELECT pg_sleep(10)", "pg_sleep() is not allowed"),
        ("SELECT pg_notify('c', 'x')", "pg_notify() is not allowed"),
        ("SELECT nextval('query_log_id_seq')", "nextval() is not allowed"),
        ("SELECT 'query_log'::regclass::int", "a cast to regclass is not allowed"),
        # functions called as fields: (x).f and t.f are f(x) and f(t) in PostgreSQL
        ("SELECT (1::bigint).pg_advisory_lock", "(expression).name is not allowed"),
        ("SELECT q.to_json FROM query_log q", "q.to_json is not a column of an alert view"),
        ("SELECT s.n FROM (SELECT 1 AS n) s", "columns without a qualifier"),
        ("SELECT alert_views.query_log.id FROM query_log", "write columns as name or table.name"),
        # writes, locks, more than one statement
        ("DELETE FROM query_log", "the query tries to write; alert queries may only read"),
        ("INSERT INTO query_log DEFAULT VALUES", "the query tries to write"),
        ("CREATE TABLE t (x int)", "the query tries to write"),
        ("WITH d AS (UPDATE query_log SET grounded = true RETURNING 1) SELECT count(*) FROM d",
         "the query tries to write"),
        ("SELECT count(*) INTO copy FROM query_log", "SELECT INTO creates a table"),
        ("SELECT id FROM query_log FOR UPDATE", "locks rows"),
        ("SELECT id FROM query_log FOR SHARE SKIP LOCKED", "locks rows"),
        ("SET ROLE postgres", "the query must be a single SELECT"),
        ("RESET ROLE", "the query must be a single SELECT"),
        ("DO $$ BEGIN PERFORM 1; END $$", "the query must be a single SELECT"),
        ("SELECT 1; SELECT 2", "give exactly one statement"),
        ("SELECT 1 OPERATOR(public.+) 1", "operator public.+ is outside pg_catalog"),
        ("SELECT $4", "only $1 (tenant), $2 (window start) and $3 (window end) exist"),
        ("SELECT count(*) FROM query_log TABLESAMPLE SYSTEM (10)", "RangeTableSample is not"),
        ("SELECT xmlelement(name x)", "XmlExpr is not allowed"),
        ("selec 1", "the query is not valid SQL: syntax error at or near"),
        ("  ;", "the query is empty"),
    ],
)  # fmt: skip
def test_anything_else_is_refused_with_the_reason(sql: str, reason: str) -> None:
    with pytest.raises(CustomSQLError) as refused:
        check(sql)
    assert reason in str(refused.value)


def test_a_cte_hides_no_table_of_the_same_name() -> None:
    """In a plain WITH, a CTE's own name inside it means the real table: no cover for one."""
    with pytest.raises(CustomSQLError, match="pg_stat_activity is not an alert view"):
        check(
            "WITH pg_stat_activity AS (SELECT * FROM pg_stat_activity) "
            "SELECT count(*) FROM pg_stat_activity"
        )
    with pytest.raises(CustomSQLError, match="later is not an alert view"):
        check("WITH early AS (SELECT * FROM later), later AS (SELECT 1) SELECT 1 FROM early")
    with pytest.raises(CustomSQLError, match="inner_only is not an alert view"):
        check(
            "SELECT (SELECT count(*) FROM (WITH inner_only AS (SELECT 1) SELECT 1) s) "
            "FROM inner_only"
        )
    check("WITH a AS (SELECT id FROM query_log), b AS (SELECT id FROM a) SELECT count(*) FROM b")
    check(
        "WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3) "
        "SELECT count(*) FROM n"
    )


def test_an_oversized_or_deeply_nested_query_is_refused() -> None:
    with pytest.raises(CustomSQLError, match=f"longer than {MAX_LENGTH} characters"):
        check("SELECT " + "1 + " * MAX_LENGTH + "1")
    with pytest.raises(CustomSQLError, match="nested too deeply"):
        check("SELECT " + "+".join(["1"] * 4000))
