"""OpenTelemetry tracing, the optional `deskmate[otel]` extra: off and not even imported without
OTEL_EXPORTER_OTLP_ENDPOINT; with it, a request's span and its SQL statements' spans reach an
OTLP/HTTP collector (a local fake here), and the request's log lines name the trace."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot import logs
from bot.runtime import Runtime
from bot.settings import Settings
from deskmate.tracing import start_tracing
from handlers.http import create_app

ROOT = Path(__file__).resolve().parents[2]

NOTHING_IMPORTED = """
import sys
from bot.runtime import Runtime
from bot.settings import load_settings
from deskmate.serve import serve
from deskmate.tracing import start_tracing
from handlers.http import create_app

settings = load_settings(env_file=None)
assert start_tracing(settings) is None
create_app(Runtime(settings))
print(sorted(m for m in sys.modules
             if m.startswith(("opentelemetry.instrumentation", "opentelemetry.exporter"))))
"""


def test_without_an_endpoint_no_tracing_package_is_imported(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", NOTHING_IMPORTED], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


class FakeCollector:
    """An OTLP/HTTP trace receiver: keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[object] = []

    async def traces(self, request: web.Request) -> web.Response:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )

        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.read())
        for resource in export.resource_spans:
            for scope in resource.scope_spans:
                self.spans.extend(scope.spans)
        return web.Response(body=b"", content_type="application/x-protobuf")


@pytest.fixture
async def collector() -> AsyncIterator[tuple[FakeCollector, str]]:
    fake = FakeCollector()
    app = web.Application()
    app.router.add_post("/v1/traces", fake.traces)
    async with TestServer(app) as server:
        yield fake, str(server.make_url("/")).rstrip("/")


async def test_a_request_and_its_sql_reach_the_collector_as_one_trace(
    settings: Settings, collector: tuple[FakeCollector, str]
) -> None:
    pytest.importorskip("opentelemetry.instrumentation.aiohttp_server")
    fake, endpoint = collector
    written = io.StringIO()
    handler = logs.handler("json", written)
    root = logging.getLogger()
    root.addHandler(handler)  # before tracing starts: it adds the trace id to root's handlers
    level = root.level
    root.setLevel(logging.INFO)
    tracing = start_tracing(settings.model_copy(update={"otel_exporter_otlp_endpoint": endpoint}))
    assert tracing is not None
    runtime = Runtime(settings)
    try:
        await runtime.start()
        async with TestClient(TestServer(create_app(runtime))) as client:
            assert (await client.get("/readyz")).status == 200
    finally:
        await runtime.stop()
        # Flushing posts to the fake on this loop: it must not block the loop.
        await asyncio.to_thread(tracing.stop)
        root.removeHandler(handler)
        root.setLevel(level)

    [server] = [s for s in fake.spans if s.kind == s.SpanKind.SPAN_KIND_SERVER]
    assert server.name == "GET /readyz"
    statements = [s for s in fake.spans if s.trace_id == server.trace_id and s is not server]
    assert statements, [s.name for s in fake.spans]
    assert all(s.kind == s.SpanKind.SPAN_KIND_CLIENT for s in statements)
    lines = [json.loads(line) for line in written.getvalue().splitlines()]
    [access] = [line for line in lines if line["logger"] == "deskmate.access"]
    assert access["trace_id"] == server.trace_id.hex()
