"""Prometheus metrics of this process, served at `GET /metrics`.

Alert rules read the service's own tables, not these: these are for the operator's Prometheus.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

REGISTRY = CollectorRegistry(auto_describe=True)

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

CONTENT_TYPE = CONTENT_TYPE_LATEST


def render() -> bytes:
    """The current metrics in Prometheus text format."""
    return generate_latest(REGISTRY)
