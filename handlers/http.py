"""The aiohttp application: health, readiness and metrics; platform routes are added by handlers.

Every request gets an id (the caller's `X-Request-Id` when sane, else a new one), sent back in
the same header and written on each log line of its work, and one access log line."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from bot import logs, metrics
from bot.errors import DeskmateError, from_storage, report_error
from bot.runtime import Runtime
from storage.errors import StorageError

RUNTIME = web.AppKey("runtime", Runtime)
REQUEST_ID = web.RequestKey("request_id", str)
REQUEST_ID_HEADER = "X-Request-Id"
# The address `deskmate serve` binds: the web chat asks for a token when it is not loopback.
BIND_HOST = web.AppKey("bind_host", str)

# Platform payloads are small; anything near this is a mistake or an attack.
MAX_REQUEST_BYTES = 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# A platform edge adds its routes, senders and start/stop hooks to the app.
Installer = Callable[[web.Application, Runtime], None]


access_log = logging.getLogger("deskmate.access")
# A client that hangs up before its answer (nginx's name for it; no HTTP status was sent).
CLIENT_CLOSED = 499


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The request's id around all of its work, and its access log line at the end."""
    request_id = logs.request_id_from(request.headers.get(REQUEST_ID_HEADER))
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    status = 500
    with logs.request_scope(request_id):
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = CLIENT_CLOSED
            raise
        finally:
            _log_access(request, status, time.perf_counter() - started)


def _log_access(request: web.Request, status: int, seconds: float) -> None:
    # The path without its query (a web chat link may carry a token there), percent-encoded as
    # it came, so it cannot break a line; never a header or a body.
    path = request.rel_url.raw_path[:200]
    duration_ms = round(seconds * 1000, 1)
    access_log.info(
        "%s %s %d %.1f ms", request.method, path, status, duration_ms,
        extra={"method": request.method, "path": path, "status": status,
               "duration_ms": duration_ms},
    )  # fmt: skip


async def _send_request_id(request: web.Request, response: web.StreamResponse) -> None:
    if REQUEST_ID in request:
        response.headers[REQUEST_ID_HEADER] = request[REQUEST_ID]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one place HTTP errors are rendered; unexpected ones get a reference id."""
    started = time.perf_counter()
    route = _route_name(request)
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except (DeskmateError, StorageError) as exc:
        error = from_storage(exc) if isinstance(exc, StorageError) else exc
        status = error.http_status
        return web.json_response({"error": str(error)}, status=status)
    except Exception as exc:
        reference = report_error(exc, where=f"http:{route}")
        return web.json_response({"error": "internal error", "reference": reference}, status=status)
    finally:
        metrics.HTTP_REQUESTS.labels(route=route, status=str(status)).inc()
        metrics.HTTP_LATENCY.labels(route=route).observe(time.perf_counter() - started)


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the database answers and every migration is applied."""
    readiness = await request.app[RUNTIME].db.readiness()
    body = {
        "status": "ready" if readiness.ready else "not ready",
        "database": "ok" if readiness.database else f"unreachable ({readiness.detail})",
        "pending_migrations": list(readiness.pending_migrations),
    }
    return web.json_response(body, status=200 if readiness.ready else 503)


async def prometheus(request: web.Request) -> web.Response:
    return web.Response(body=metrics.render(), headers={"Content-Type": metrics.CONTENT_TYPE})


def create_app(
    runtime: Runtime, installers: Sequence[Installer] = (), *, host: str = "127.0.0.1"
) -> web.Application:
    """The service's HTTP face; the runtime must be started before requests arrive."""
    app = web.Application(
        middlewares=[request_middleware, error_middleware], client_max_size=MAX_REQUEST_BYTES
    )
    app.on_response_prepare.append(_send_request_id)
    app[RUNTIME] = runtime
    metrics.watch_pools(runtime.db)
    app[BIND_HOST] = host
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", prometheus)
    for install in installers:
        install(app, runtime)
    return app
