"""The local web chat (SPEC §8): a page at `GET /` where you pick a directory user and talk to
deskmate in a DM or in web channels, through the same conversation service as Slack and Teams.

It is a platform like the others: identities `web` (user id = email), channel clearances with
platform `web`, and a `WebSender` so scheduled messages and alerts reach `web:#channel`.
With several replicas, each listens for what the others post and answer (relay.py).
Local-only by default: bound to a loopback address it is open to this machine (the demo
picker); bound to any other address it asks people to sign in (signin.py) when a provider is
configured, and acts as the signed-in person only; else it needs `WEBCHAT_TOKEN`, and without
one it stays off.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from aiohttp import web

from bot.errors import DeskmateError
from bot.local_chat import LocalChat
from bot.runtime import Runtime
from bot.settings import Settings
from handlers.http import BIND_HOST
from handlers.webchat import api, own_data, signin
from handlers.webchat.hub import Hub
from handlers.webchat.oidc import providers
from handlers.webchat.relay import ListenUrl, Relay
from handlers.webchat.sender import ChannelPosts, WebSender
from handlers.webchat.stream import stream
from storage.tenants import DEFAULT_TENANT

logger = logging.getLogger("deskmate.webchat")

STATIC = Path(__file__).parent / "static"
COOKIE = "deskmate_webchat"
# The page loads nothing from elsewhere and runs no inline script: an answer or a document that
# slipped HTML past the renderer still could not run code or phone home.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Access(StrEnum):
    OPEN = "open"  # bound to loopback: anyone on this machine
    SIGNIN = "signin"  # bound elsewhere, a sign-in provider configured: the signed-in person
    TOKEN = "token"  # bound elsewhere, WEBCHAT_TOKEN set: whoever has it
    DISABLED = "disabled"  # bound elsewhere without a token: off


Unauthorized = signin.Unauthorized
Forbidden = signin.Forbidden


def is_loopback(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def access_mode(host: str, settings: Settings) -> Access:
    """Who may use the web chat of a service bound to `host`."""
    if is_loopback(host):
        return Access.OPEN
    if settings.signin_enabled:
        return Access.SIGNIN
    return Access.TOKEN if settings.webchat_token is not None else Access.DISABLED


def url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def describe(host: str, port: int, settings: Settings) -> str:
    """The start-up line about the web chat."""
    access = access_mode(host, settings)
    if access is Access.OPEN:
        return f"{url(host, port)}  (this machine only: pick a demo user and ask)"
    if access is Access.SIGNIN:
        labels = " or ".join(p.label for p in providers(settings))
        return f"{settings.web_public_url}/  (sign in with {labels})"
    if access is Access.TOKEN:
        return f"{url(host, port)}?token=…  (open once with WEBCHAT_TOKEN; then a cookie)"
    return f"off: {host} is not a loopback address and WEBCHAT_TOKEN is not set"


@dataclass(frozen=True)
class Guard:
    """Checks every web chat request against the access mode."""

    access: Access
    token: str | None

    def check(self, request: web.Request) -> None:
        if self.access is Access.OPEN:
            # A page of another site that re-points its own name at 127.0.0.1 (DNS rebinding)
            # sends its own Host: refuse anything but a loopback name.
            if not is_loopback(request.url.host or ""):
                raise Forbidden("the web chat answers on localhost addresses only")
            return
        presented = request.cookies.get(COOKIE, "")
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("bearer "):
            presented = header[7:].strip()
        if not self.matches(presented):
            raise Unauthorized(
                "the web chat needs WEBCHAT_TOKEN: open /?token=… once, "
                "or send Authorization: Bearer …"
            )

    def matches(self, presented: str) -> bool:
        if not self.token:  # no token set: nothing presented can match
            return False
        return secrets.compare_digest(presented.encode(), self.token.encode())


GUARD = web.AppKey("webchat_guard", Guard)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def guarded(handler: Handler) -> Handler:
    async def check_then_handle(request: web.Request) -> web.StreamResponse:
        if signin.SIGNIN in request.app:
            await signin.admit(request)
            await api.check_claims(request)
        else:
            request.app[GUARD].check(request)
        return await handler(request)

    return check_then_handle


async def page(request: web.Request) -> web.StreamResponse:
    """The chat page; `?token=` (token mode) becomes a cookie and is taken out of the URL."""
    guard = request.app[GUARD]
    if guard.access is Access.SIGNIN:
        await signin.admit_page(request)
        return web.FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)
    token = request.query.get("token")
    if token is not None and guard.access is Access.TOKEN and guard.matches(token):
        response = web.HTTPSeeOther("/")
        response.set_cookie(COOKIE, token, httponly=True, samesite="Strict",
                            secure=request.secure, path="/")  # fmt: skip
        raise response
    try:
        guard.check(request)
    except DeskmateError as exc:
        return web.Response(text=f"deskmate web chat: {exc}\n", status=exc.http_status)
    return web.FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)


async def disabled(request: web.Request) -> web.Response:
    return web.Response(status=403, text=(
        "deskmate web chat is off: the service listens on a non-loopback address and "
        "WEBCHAT_TOKEN is not set. Set WEBCHAT_TOKEN, or serve on 127.0.0.1.\n"
    ))  # fmt: skip


def listen_url(runtime: Runtime) -> ListenUrl:
    """Where the relay LISTENs: DATABASE_LISTEN_URL, else the pool's own server, unless that is
    reached through a transaction pooler (which cannot hold a LISTEN)."""

    async def url() -> str | None:
        configured = runtime.settings.database_listen_url
        if configured is not None:
            return configured.get_secret_value()
        if runtime.db.config.transaction_pooled:
            logger.warning("web chat pages see only this replica's posts live: DATABASE_URL goes "
                           "through a transaction pooler; set DATABASE_LISTEN_URL to reach "
                           "PostgreSQL directly")  # fmt: skip
            return None
        return await runtime.db.dsn()

    return url


def install(app: web.Application, runtime: Runtime) -> None:
    """Add the page, the API and the `web` sender, as the bind address and token allow."""
    access = access_mode(app[BIND_HOST], runtime.settings)
    if access is Access.DISABLED:
        logger.warning("web chat disabled: %s is not a loopback address and WEBCHAT_TOKEN is "
                       "not set", app[BIND_HOST])  # fmt: skip
        app.router.add_get("/", disabled)
        return
    token = runtime.settings.webchat_token
    app[GUARD] = Guard(access, token.get_secret_value() if token else None)
    if access is Access.SIGNIN:
        signin.install_routes(app, signin.create(runtime))
    hub = Hub()
    core = LocalChat(runtime.db, runtime.conversation, DEFAULT_TENANT)
    relay = Relay(core, hub, listen_url(runtime))
    posts = ChannelPosts(runtime.db, hub, relay)
    sender = WebSender(posts)
    runtime.senders.register(sender)
    app[api.WEBCHAT] = api.WebChat(runtime, hub, posts, sender, relay)

    async def end_streams(_: web.Application) -> None:
        hub.close()

    app.on_startup.append(relay.start)
    app.on_shutdown.extend([end_streams, relay.stop])
    app.router.add_get("/", page)
    app.router.add_static("/webchat/static/", STATIC)
    routes = {
        ("GET", "info"): api.info, ("GET", "users"): api.list_users,
        ("GET", "channels"): api.list_channels, ("GET", "history"): api.history,
        ("GET", "suggestions"): api.suggestions,
        ("POST", "messages"): api.send, ("POST", "actions"): api.click,
        ("GET", "stream"): stream, ("GET", "me"): api.me,
        ("GET", "me/memories"): own_data.listing, ("GET", "me/export"): own_data.export,
        ("PATCH", "me/memories/{memory_id}"): own_data.edit,
        ("DELETE", "me/memories/{memory_id}"): own_data.forget,
        ("DELETE", "me/memories"): own_data.erase,
    }  # fmt: skip
    for (method, name), handler in routes.items():
        app.router.add_route(method, f"/webchat/api/{name}", guarded(handler))
    logger.info("web chat on (%s)", access.value)
