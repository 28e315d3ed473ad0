"""HTTP endpoints of `deskmate serve`: liveness, readiness, metrics, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.runtime import Runtime
from bot.settings import Settings
from handlers.http import RUNTIME, create_app


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient]:
    runtime = Runtime(settings)
    await runtime.start()
    app = create_app(runtime)

    async def explode(request: web.Request) -> web.Response:
        raise RuntimeError("password=hunter2 leaked?")

    app.router.add_get("/explode", explode)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client
    await runtime.stop()


async def test_healthz(client: TestClient) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}


async def test_readyz_when_migrated(client: TestClient) -> None:
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {"status": "ready", "database": "ok", "pending_migrations": []}


async def test_readyz_is_503_with_a_pending_migration(client: TestClient) -> None:
    runtime = client.app[RUNTIME]
    async with runtime.db.pool.acquire() as conn:
        await conn.execute("DELETE FROM schema_migrations WHERE version = '0001'")
    response = await client.get("/readyz")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "not ready"
    assert body["pending_migrations"] == ["0001"]


async def test_metrics_in_prometheus_format(client: TestClient) -> None:
    await client.get("/healthz")
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    assert 'deskmate_http_requests_total{route="/healthz",status="200"}' in text


async def test_unexpected_error_gets_a_reference_not_details(client: TestClient) -> None:
    response = await client.get("/explode")
    assert response.status == 500
    body = await response.json()
    assert body["error"] == "internal error"
    assert len(body["reference"]) == 8
    assert "hunter2" not in await response.text()


async def test_unknown_route_is_404(client: TestClient) -> None:
    response = await client.get("/nope")
    assert response.status == 404
