"""OpenTelemetry traces, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set: a span per HTTP request
(aiohttp server) with a child per SQL statement (asyncpg), sent over OTLP/HTTP.

The packages are the optional `deskmate[otel]` extra and are imported only here, only when the
endpoint is set: a process without it never loads them. Start before the HTTP app is made (the
aiohttp instrumentation wraps `web.Application`), stop after the server has stopped.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from typing import Any

from yarl import URL

from bot.errors import ConfigError
from bot.settings import Settings

logger = logging.getLogger("deskmate.tracing")

SERVICE_NAME = "deskmate"


class Tracing:
    """The tracer provider and instrumentations of this process; `stop()` flushes the spans
    still buffered and undoes the instrumentation."""

    def __init__(self, provider: Any, instrumentors: list[Any], log_filter: logging.Filter) -> None:
        self.provider = provider
        self.instrumentors = instrumentors
        self.log_filter = log_filter

    def stop(self) -> None:
        for instrumentor in self.instrumentors:
            instrumentor.uninstrument()
        for handler in logging.getLogger().handlers:
            handler.removeFilter(self.log_filter)
        self.provider.shutdown()


def traces_url(endpoint: str) -> str:
    """The traces URL under an OTLP base endpoint, as the OpenTelemetry specification builds it
    from OTEL_EXPORTER_OTLP_ENDPOINT."""
    return endpoint.rstrip("/") + "/v1/traces"


def start_tracing(settings: Settings) -> Tracing | None:
    """Tracing on when the settings name an OTLP endpoint; None (nothing imported) otherwise."""
    endpoint = settings.otel_exporter_otlp_endpoint
    if not endpoint:
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise ConfigError(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but the tracing packages are not installed: "
            "pip install 'deskmate[otel]'"
        ) from None
    name = os.environ.get("OTEL_SERVICE_NAME") or SERVICE_NAME
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint))))
    instrumentors: list[Any] = [AioHttpServerInstrumentor(), AsyncPGInstrumentor()]
    with warnings.catch_warnings():
        # The aiohttp instrumentation subclasses web.Application, which aiohttp frowns upon;
        # its warning would only alarm an operator who turned tracing on.
        warnings.filterwarnings("ignore", "Inheritance class", DeprecationWarning)
        for instrumentor in instrumentors:
            instrumentor.instrument(tracer_provider=provider)
    log_filter = TraceIdFilter(trace.get_current_span)
    for handler in logging.getLogger().handlers:
        handler.addFilter(log_filter)
    logger.info("tracing: spans go to %s", URL(traces_url(endpoint)).with_user(None))
    return Tracing(provider, instrumentors, log_filter)


class TraceIdFilter(logging.Filter):
    """Puts the current trace's id on each record, so a log line leads to its trace."""

    def __init__(self, current_span: Callable[[], Any]) -> None:
        super().__init__()
        self._current_span = current_span

    def filter(self, record: logging.LogRecord) -> bool:
        context = self._current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
        return True
