"""Prometheus metrics of this process, served at `GET /metrics`; every one is declared here
(docs/metrics.md explains each, deploy/ has a dashboard and alert rules built on them).

Alert rules read the service's own tables, not these: these are for the operator's Prometheus.
Names follow Prometheus's rules: base units (seconds, bytes, dollars as `usd`), `_total` on
counters. Labels take few values (platform, status, model, kind), never ids or text.
"""

from __future__ import annotations

import datetime as dt
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from storage.database import Database

REGISTRY = CollectorRegistry(auto_describe=True)
# The process's CPU, memory, open files and start time, Python's version and its garbage
# collector: prometheus-client's own collectors, registered here too since REGISTRY is ours.
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

HTTP_REQUESTS = Counter(
    "deskmate_http_requests_total",
    "HTTP requests answered, by route and status.",
    ["route", "status"],
    registry=REGISTRY,
)
HTTP_LATENCY = Histogram(
    "deskmate_http_request_seconds",
    "Time to answer an HTTP request.",
    ["route"],
    registry=REGISTRY,
)
ERRORS = Counter(
    "deskmate_errors_total",
    "Unexpected errors, by where they happened.",
    ["where"],
    registry=REGISTRY,
)

# --- answers -------------------------------------------------------------------------------------

_SLOW = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0, 120.0)
_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

ANSWERS = Counter(
    "deskmate_answers_total",
    "Messages the conversation service replied to, by platform and status "
    "(answered, offline, command, error).",
    ["platform", "status"],
    registry=REGISTRY,
)
ANSWER_SECONDS = Histogram(
    "deskmate_answer_seconds",
    "Time from a message reaching the conversation service to its reply being recorded.",
    ["platform"],
    buckets=_SLOW,
    registry=REGISTRY,
)

# --- Claude --------------------------------------------------------------------------------------

LLM_CALLS = Counter(
    "deskmate_llm_calls_total",
    "Claude calls finished, by model and outcome (ok, error); the retries inside a call are "
    "not calls.",
    ["model", "outcome"],
    registry=REGISTRY,
)
LLM_TOKENS = Counter(
    "deskmate_llm_tokens_total",
    "Tokens of successful Claude calls, by model and kind (input, output, cache_read, "
    "cache_write).",
    ["model", "kind"],
    registry=REGISTRY,
)
LLM_COST = Counter(
    "deskmate_llm_cost_usd_total",
    "Estimated cost of successful Claude calls at list prices, in US dollars.",
    ["model"],
    registry=REGISTRY,
)
LLM_SECONDS = Histogram(
    "deskmate_llm_call_seconds",
    "Time of a Claude call, from the first attempt to the last byte, retries and their waits "
    "included.",
    ["model", "outcome"],
    buckets=_SLOW,
    registry=REGISTRY,
)
LLM_FIRST_TOKEN_SECONDS = Histogram(
    "deskmate_llm_time_to_first_token_seconds",
    "Time from sending a streamed answer's request to its first text (the attempt that answered).",
    ["model"],
    buckets=_SLOW,
    registry=REGISTRY,
)
LLM_ERRORS = Counter(
    "deskmate_llm_errors_total",
    "Failed Claude attempts, by kind (the SDK's error class: RateLimitError, APITimeoutError, "
    "InternalServerError, …), retried ones included.",
    ["kind"],
    registry=REGISTRY,
)

# --- retrieval and embeddings --------------------------------------------------------------------

RETRIEVAL_SECONDS = Histogram(
    "deskmate_retrieval_seconds",
    "Time of a search's statement in PostgreSQL, by arm: chunks (meaning, words and codes, "
    "fused in one statement) or memories.",
    ["arm"],
    buckets=_FAST,
    registry=REGISTRY,
)
RETRIEVAL_NO_ANSWER = Counter(
    "deskmate_retrieval_no_answer_total",
    "Questions for which no passage passed the relevance gate (the 'nothing relevant' case).",
    registry=REGISTRY,
)
EMBEDDING_SECONDS = Histogram(
    "deskmate_embedding_seconds",
    "Time to embed one batch of texts, by kind (query, document).",
    ["kind"],
    buckets=_FAST,
    registry=REGISTRY,
)
EMBEDDING_TEXTS = Counter(
    "deskmate_embedding_texts_total",
    "Texts embedded, by kind (query, document).",
    ["kind"],
    registry=REGISTRY,
)

# --- accepted platform events --------------------------------------------------------------------

EVENTS_ACKED = Counter(
    "deskmate_events_acked_total",
    "Platform events acked after their claim was stored, by platform and outcome (new: to be "
    "answered; duplicate: a retry or twin of one already claimed).",
    ["platform", "outcome"],
    registry=REGISTRY,
)
EVENTS_RESUMED = Counter(
    "deskmate_events_resumed_total",
    "Accepted events whose earlier attempt never finished (its replica died), started again "
    "by the sweeper, by platform.",
    ["platform"],
    registry=REGISTRY,
)

# --- scheduler and alerts ------------------------------------------------------------------------

SCHEDULED_RUNS = Counter(
    "deskmate_scheduled_runs_total",
    "Scheduled runs finished by this process, by platform and outcome (sent, found, retry, "
    "failed, lost, error).",
    ["platform", "outcome"],
    registry=REGISTRY,
)
SCHEDULER_CLAIMS = Counter(
    "deskmate_scheduler_claims_total",
    "Due runs claimed by this process for delivery, by platform (a retried run is claimed again).",
    ["platform"],
    registry=REGISTRY,
)
SCHEDULER_LAG_SECONDS = Histogram(
    "deskmate_scheduler_lag_seconds",
    "From a run's slot (when it was due) to its post being recorded as sent, by platform.",
    ["platform"],
    buckets=(0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0),
    registry=REGISTRY,
)
ALERT_EVALUATIONS = Counter(
    "deskmate_alert_evaluations_total",
    "Alert rule evaluations recorded by this process, by outcome (ok, pending, firing, "
    "resolved, no_data, error).",
    ["outcome"],
    registry=REGISTRY,
)
ALERT_CYCLE_SECONDS = Histogram(
    "deskmate_alert_evaluation_cycle_seconds",
    "Time of one pass over the alert rules due (every scheduler tick).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)

# Label values known in advance start at zero, so `rate()` and alerts see a series from the
# first scrape rather than from the first event.
_PLATFORMS = ("slack", "teams", "web")
for _platform in _PLATFORMS:
    EVENTS_RESUMED.labels(platform=_platform)
    SCHEDULER_CLAIMS.labels(platform=_platform)
for _outcome in ("ok", "pending", "firing", "resolved", "no_data", "error"):
    ALERT_EVALUATIONS.labels(outcome=_outcome)


class Usage(Protocol):
    @property
    def input_tokens(self) -> int: ...
    @property
    def output_tokens(self) -> int: ...
    @property
    def cache_read_tokens(self) -> int: ...
    @property
    def cache_write_tokens(self) -> int: ...


class Completion(Protocol):
    """What is counted of a Claude call (bot.llm.Completion; named here, not imported, as
    bot.llm reports to this module)."""

    @property
    def usage(self) -> Usage: ...
    @property
    def cost_usd(self) -> float: ...
    @property
    def time_to_first_token_ms(self) -> int | None: ...


def observe_llm_call(model: str, completion: Completion | None, seconds: float) -> None:
    """One finished Claude call: `completion` None when it failed."""
    outcome = "ok" if completion is not None else "error"
    LLM_CALLS.labels(model=model, outcome=outcome).inc()
    LLM_SECONDS.labels(model=model, outcome=outcome).observe(seconds)
    if completion is None:
        return
    usage = completion.usage
    for kind, tokens in (
        ("input", usage.input_tokens),
        ("output", usage.output_tokens),
        ("cache_read", usage.cache_read_tokens),
        ("cache_write", usage.cache_write_tokens),
    ):
        LLM_TOKENS.labels(model=model, kind=kind).inc(tokens)
    LLM_COST.labels(model=model).inc(completion.cost_usd)
    if completion.time_to_first_token_ms is not None:
        LLM_FIRST_TOKEN_SECONDS.labels(model=model).observe(
            completion.time_to_first_token_ms / 1000
        )


def observe_delivery_lag(platform: str, slot: dt.datetime) -> None:
    """A scheduled run was sent: how late after its slot."""
    lag = (dt.datetime.now(dt.UTC) - slot).total_seconds()
    SCHEDULER_LAG_SECONDS.labels(platform=platform).observe(max(lag, 0.0))


# --- the database pools, read when Prometheus scrapes --------------------------------------------


class Pool(Protocol):
    """What the collector reads of a connection pool (asyncpg's public counters)."""

    def get_size(self) -> int: ...
    def get_idle_size(self) -> int: ...
    def get_max_size(self) -> int: ...


class PoolCollector(Collector):
    """The pools of the process's database, as they are at scrape time: connections in use,
    idle, open and the most the pool may open, for the main pool and the one kept for acks."""

    def __init__(self) -> None:
        self._database: weakref.ref[Database] | None = None

    def watch(self, database: Database) -> None:
        self._database = weakref.ref(database)

    def collect(self) -> Iterator[Metric]:
        families = {
            name: GaugeMetricFamily(f"deskmate_db_pool_{name}_connections", text, labels=["pool"])
            for name, text in (
                ("in_use", "Pooled connections lent out now, by pool (main, ack)."),
                ("idle", "Open pooled connections waiting to be lent, by pool (main, ack)."),
                ("open", "Connections the pool holds open now, by pool (main, ack)."),
                ("max", "The most connections the pool may open, by pool (main, ack)."),
            )
        }
        database = self._database() if self._database is not None else None
        for name, pool in _pools(database):
            size, idle = pool.get_size(), pool.get_idle_size()
            families["in_use"].add_metric([name], size - idle)
            families["idle"].add_metric([name], idle)
            families["open"].add_metric([name], size)
            families["max"].add_metric([name], pool.get_max_size())
        yield from families.values()


def _pools(database: Database | None) -> Iterator[tuple[str, Pool]]:
    if database is None:
        return
    for name, attribute in (("main", "pool"), ("ack", "ack_pool")):
        try:
            yield name, getattr(database, attribute)
        except RuntimeError:  # not started, or already stopped
            continue


POOLS = PoolCollector()
REGISTRY.register(POOLS)


def watch_pools(database: Database) -> None:
    """Report this database's pools on /metrics (the process has one; the latest wins)."""
    POOLS.watch(database)


CONTENT_TYPE = CONTENT_TYPE_LATEST


def render() -> bytes:
    """The current metrics in Prometheus text format."""
    return generate_latest(REGISTRY)
