"""The first wall around a custom_sql alert rule: its query, parsed by PostgreSQL's own parser
(pglast), must be one SELECT over the alert views using allow-listed functions and types only.

What the check lets through still runs as a login role that can read nothing but the views of
schema `alert_views`, which fix the tenant themselves (migration 0012): the check is what keeps
a query from calling `set_config`, advisory locks, `pg_sleep` or `pg_read_file`, or reading the
catalog, and gives the admin a reason in one sentence when the rule is saved.

Pure: no I/O. The only module that imports pglast (tests/unit/test_layering.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pglast
from pglast import ast

from storage.errors import StorageError


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


MAX_LENGTH = 10_000
PARAMETERS = 3  # $1 tenant, $2 window start, $3 window end
VIEW_SCHEMA = "alert_views"

# The views of migrations 0012 and 0018 and their columns: measurements, never what people wrote.
VIEWS: dict[str, frozenset[str]] = {
    "query_log": _words(
        "id tenant_id platform in_channel answer_status grounded response_time_ms created_at"
    ),
    "llm_call_metrics": _words(
        "id tenant_id query_id purpose model status error_type attempts input_tokens "
        "output_tokens cache_read_tokens cache_write_tokens latency_ms time_to_first_token_ms "
        "cost_usd created_at"
    ),
    "rag_metrics": _words(
        "id tenant_id query_id embed_ms memory_search_ms chunk_search_ms memories_found "
        "chunks_found top_memory_score top_chunk_score created_at"
    ),
    "answer_feedback": _words("id tenant_id rating created_at"),
    "scheduled_runs": _words(
        "id tenant_id schedule_id slot status attempts manual sent_at failed_at created_at"
    ),
    "tenant": frozenset({"id"}),
    # Migration 0018: each monthly LLM budget that spent anything, and the share of it used.
    "llm_budget_usage": _words(
        "tenant_id month user_id tokens cost_usd limit_tokens limit_usd used_ratio"
    ),
}
COLUMNS = frozenset().union(*VIEWS.values())

FUNCTIONS = _words(
    # aggregates
    "count sum avg min max stddev stddev_pop stddev_samp variance var_pop var_samp "
    "percentile_cont percentile_disc mode bool_and bool_or every corr covar_pop covar_samp "
    # arithmetic
    "abs ceil ceiling floor round trunc sign sqrt cbrt power pow exp ln log log10 mod div "
    "width_bucket "
    # date and time (extract, AT TIME ZONE and OVERLAPS are spelled as functions)
    "now clock_timestamp statement_timestamp transaction_timestamp date_trunc date_part "
    "extract date_bin age make_interval make_date make_timestamptz to_timestamp timezone "
    "justify_days justify_hours justify_interval isfinite overlaps "
    # text, for labels and filters (TRIM, POSITION, SUBSTRING, SIMILAR TO)
    "lower upper length char_length starts_with btrim ltrim rtrim position substring "
    "similar_to_escape "
    # rows to count over
    "generate_series"
)
TYPES = _words(
    "int2 int4 int8 smallint integer int bigint numeric decimal float4 float8 real text "
    "varchar bool boolean date time timetz timestamp timestamptz interval"
)
# Expression and clause nodes a query may contain besides the ones checked one by one below.
PLAIN_NODES = _words(
    "ResTarget A_Const Integer Float String Boolean A_Star BoolExpr NullTest BooleanTest "
    "CaseExpr CaseWhen CoalesceExpr MinMaxExpr RangeSubselect JoinExpr Alias WindowDef "
    "GroupingSet RangeFunction SQLValueFunction A_ArrayExpr A_Indices RowExpr"
)
WRITES = (
    ast.InsertStmt,
    ast.UpdateStmt,
    ast.DeleteStmt,
    ast.MergeStmt,
    ast.CreateStmt,
    ast.CreateTableAsStmt,
    ast.DropStmt,
    ast.AlterTableStmt,
    ast.TruncateStmt,
)
FUNCTION_HINT = "use aggregates, arithmetic and date functions such as count, avg, date_trunc"


class CustomSQLError(StorageError):
    """A custom_sql rule's query cannot be used; the message says why, in one sentence."""


@dataclass(frozen=True)
class CheckedQuery:
    """A query that passed the check, as given (less a final semicolon)."""

    text: str


def check(sql: str) -> CheckedQuery:
    """The query, if it is one SELECT over the alert views; else CustomSQLError saying why."""
    text = sql.strip().rstrip(";").strip()
    if not text:
        raise CustomSQLError("the query is empty")
    if len(text) > MAX_LENGTH:
        raise CustomSQLError(f"the query is longer than {MAX_LENGTH} characters")
    try:
        statements = pglast.parse_sql(text)
        if len(statements) != 1:
            raise CustomSQLError("give exactly one statement")
        statement = statements[0].stmt
        if isinstance(statement, WRITES):
            raise CustomSQLError("the query tries to write; alert queries may only read")
        if not isinstance(statement, ast.SelectStmt):
            raise CustomSQLError("the query must be a single SELECT")
        checker = _Checker()
        checker.select(statement, frozenset())
    except pglast.parser.ParseError as exc:
        raise CustomSQLError(f"the query is not valid SQL: {exc}") from None
    except RecursionError:
        raise CustomSQLError("the query is nested too deeply") from None
    return CheckedQuery(text)


def _names(items: tuple[ast.Node, ...] | None) -> list[str]:
    return [str(item.sval) for item in items or () if isinstance(item, ast.String)]


def _children(node: ast.Node) -> Iterator[ast.Node]:
    for slot in node.__slots__:
        yield from _nodes(getattr(node, slot))


def _nodes(value: object) -> Iterator[ast.Node]:
    if isinstance(value, ast.Node):
        yield value
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _nodes(item)


class _Checker:
    """Walks the parse tree; `scope` is the set of CTE names a table reference may mean."""

    def select(self, stmt: ast.SelectStmt, scope: frozenset[str]) -> None:
        if stmt.intoClause is not None:
            raise CustomSQLError("SELECT INTO creates a table; alert queries may only read")
        if stmt.lockingClause:
            raise CustomSQLError("the query locks rows (FOR UPDATE/SHARE); alert queries only read")
        if stmt.withClause is not None:
            scope = self.with_clause(stmt.withClause, scope)
        for slot in stmt.__slots__:
            if slot != "withClause":
                for child in _nodes(getattr(stmt, slot)):
                    self.visit(child, scope)

    def with_clause(self, clause: ast.WithClause, scope: frozenset[str]) -> frozenset[str]:
        """Check each CTE with the names it can see (PostgreSQL's rules: a plain WITH sees the
        CTEs before it, WITH RECURSIVE all of them); return the names the body sees."""
        ctes = [cte for cte in clause.ctes or () if isinstance(cte, ast.CommonTableExpr)]
        every = scope | {cte.ctename for cte in ctes}
        seen = set(scope)
        for cte in ctes:
            if not isinstance(cte.ctequery, ast.SelectStmt):
                raise CustomSQLError("the query tries to write; alert queries may only read")
            if cte.search_clause is not None or cte.cycle_clause is not None:
                raise CustomSQLError("SEARCH and CYCLE clauses are not allowed in alert queries")
            self.select(cte.ctequery, every if clause.recursive else frozenset(seen))
            seen.add(cte.ctename)
        return frozenset(every)

    def visit(self, node: ast.Node, scope: frozenset[str]) -> None:
        if isinstance(node, ast.SelectStmt):
            self.select(node, scope)
            return
        kind = type(node).__name__
        special = getattr(self, f"_{kind}", None)
        if special is not None:
            special(node, scope)
        elif kind not in PLAIN_NODES:
            raise CustomSQLError(f"{kind} is not allowed in alert queries")
        for child in _children(node):
            self.visit(child, scope)

    # -- the nodes that name something: a relation, a function, a type, a column, an operator

    def _RangeVar(self, node: ast.RangeVar, scope: frozenset[str]) -> None:
        if node.catalogname or node.schemaname not in (None, VIEW_SCHEMA):
            qualified = ".".join(n for n in (node.catalogname, node.schemaname) if n)
            raise CustomSQLError(
                f"{qualified}.{node.relname} is outside the alert views: {_view_list()}"
            )
        if node.relname not in VIEWS and not (node.schemaname is None and node.relname in scope):
            raise CustomSQLError(f"{node.relname} is not an alert view: {_view_list()}")

    def _FuncCall(self, node: ast.FuncCall, _: frozenset[str]) -> None:
        names = _names(node.funcname)
        if names[:-1] not in ([], ["pg_catalog"]) or names[-1] not in FUNCTIONS:
            called = ".".join(names)
            raise CustomSQLError(f"{called}() is not allowed in alert queries: {FUNCTION_HINT}")

    def _TypeCast(self, node: ast.TypeCast, _: frozenset[str]) -> None:
        names = _names(node.typeName.names if node.typeName else None)
        if names[:-1] not in ([], ["pg_catalog"]) or not names or names[-1] not in TYPES:
            raise CustomSQLError(
                f"a cast to {'.'.join(names)} is not allowed: cast to numbers, text, booleans, "
                "dates, timestamps or intervals"
            )

    def _TypeName(self, node: ast.TypeName, _: frozenset[str]) -> None:
        """Checked by its cast; seen here only as the cast's child."""

    def _ParamRef(self, node: ast.ParamRef, _: frozenset[str]) -> None:
        if not 1 <= node.number <= PARAMETERS:
            raise CustomSQLError("only $1 (tenant), $2 (window start) and $3 (window end) exist")

    def _ColumnRef(self, node: ast.ColumnRef, _: frozenset[str]) -> None:
        """`x.name` where `name` is no column of x is a call of function `name` on x in
        PostgreSQL, so only the views' own column names may follow a qualifier."""
        fields: tuple[ast.Node, ...] = tuple(node.fields or ())
        if len(fields) > 2:
            raise CustomSQLError("write columns as name or table.name")
        last = fields[-1]
        if len(fields) == 2 and isinstance(last, ast.String) and last.sval not in COLUMNS:
            raise CustomSQLError(
                f"{'.'.join(_names(fields))} is not a column of an alert view (write a "
                "subquery's own columns without a qualifier)"
            )

    def _A_Indirection(self, node: ast.A_Indirection, _: frozenset[str]) -> None:
        # (expr).name calls function `name` on expr: only array subscripts are let through.
        if not all(isinstance(item, ast.A_Indices) for item in node.indirection or ()):
            raise CustomSQLError("(expression).name is not allowed in alert queries")

    def _A_Expr(self, node: ast.A_Expr, _: frozenset[str]) -> None:
        self._operator(_names(node.name))

    def _SortBy(self, node: ast.SortBy, _: frozenset[str]) -> None:
        self._operator(_names(node.useOp))

    def _SubLink(self, node: ast.SubLink, _: frozenset[str]) -> None:
        self._operator(_names(node.operName))

    def _operator(self, names: list[str]) -> None:
        if names[:-1] not in ([], ["pg_catalog"]):
            raise CustomSQLError(f"operator {'.'.join(names)} is outside pg_catalog")


def _view_list() -> str:
    return "read " + ", ".join(VIEWS)
