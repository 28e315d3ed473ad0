"""Sign-in for the web surface off loopback (SPEC §9): "Sign in with Slack" and Microsoft Entra
ID over OpenID Connect, a session cookie per browser, and a CSRF token every state-changing
request must carry (header `X-CSRF-Token`, or a `csrf_token` form field).

The routes: `GET /signin` (the choice of providers), `GET /signin/{provider}` (off to the
provider), `GET /signin/{provider}/callback` (back, signed in or told why not), `POST /signout`.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import secrets
import urllib.parse
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from bot.errors import DeskmateError
from bot.runtime import Runtime
from bot.settings import Settings
from bot.web_identity import SignedIn, SigninRefused, WebIdentity
from handlers.webchat.oidc import OidcClient, ProviderUnavailable, SigninFailed, new_attempt
from handlers.webchat.oidc import providers as configured_providers
from storage.tenants import DEFAULT_TENANT

logger = logging.getLogger("deskmate.webchat.signin")

SESSION_COOKIE = "deskmate_session"
# Readable by the page's script (not HttpOnly): it sends the value back as X-CSRF-Token. A page
# of another site can make the browser send cookies, never read them.
CSRF_COOKIE = "deskmate_csrf"
SIGNIN_COOKIE = "deskmate_signin"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SIGNIN_PATH = "/signin"

SIGNED_IN = web.RequestKey("webchat_signed_in", SignedIn)

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Unauthorized(DeskmateError):
    http_status = 401


class Forbidden(DeskmateError):
    http_status = 403


@dataclass
class Signin:
    """The sign-in of one process: its providers, the sessions, where browsers come back to."""

    identity: WebIdentity
    public_url: str
    clients: dict[str, OidcClient] = field(default_factory=dict)
    http: aiohttp.ClientSession | None = None

    @property
    def secure_cookies(self) -> bool:
        """Cookies travel over HTTPS only, unless deskmate is reached at a plain-HTTP loopback
        address (the settings allow http:// for that only)."""
        return not self.public_url.startswith("http://")

    def redirect_uri(self, provider: str) -> str:
        return f"{self.public_url}{SIGNIN_PATH}/{provider}/callback"

    def session(self) -> aiohttp.ClientSession:
        if self.http is None or self.http.closed:
            self.http = aiohttp.ClientSession()
        return self.http


SIGNIN = web.AppKey("webchat_signin", Signin)


def create(runtime: Runtime) -> Signin:
    """The process's sign-in, with a client per configured provider."""
    settings: Settings = runtime.settings
    lifetime = dt.timedelta(hours=settings.web_session_hours)
    identity = WebIdentity(runtime.db, DEFAULT_TENANT, session_lifetime=lifetime)
    signin = Signin(identity, (settings.web_public_url or "").rstrip("/"))
    for provider in configured_providers(settings):
        signin.clients[provider.name] = OidcClient(provider, signin.session)
    return signin


def install_routes(app: web.Application, signin: Signin) -> None:
    """The sign-in and sign-out routes, and the HTTP client closed with the app."""
    app[SIGNIN] = signin

    async def close_client(_: web.Application) -> None:
        if signin.http is not None:
            await signin.http.close()

    app.on_cleanup.append(close_client)
    app.router.add_get(SIGNIN_PATH, choose)
    app.router.add_get(SIGNIN_PATH + "/{provider}", start)
    app.router.add_get(SIGNIN_PATH + "/{provider}/callback", callback)
    app.router.add_post("/signout", signout)


# --- who is asking --------------------------------------------------------------------------


async def admit(request: web.Request) -> SignedIn:
    """The signed-in person of the request (401 without one); a state-changing request must
    also carry the session's CSRF token (403)."""
    signed = await request.app[SIGNIN].identity.signed_in(request.cookies.get(SESSION_COOKIE, ""))
    if signed is None:
        raise Unauthorized(f"sign in first: open {SIGNIN_PATH}")
    if request.method not in SAFE_METHODS:
        presented = await _csrf_presented(request)
        if not secrets.compare_digest(presented.encode(), signed.csrf_token.encode()):
            raise Forbidden("this request has no valid CSRF token: reload the page and try again")
    request[SIGNED_IN] = signed
    return signed


async def _csrf_presented(request: web.Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header is not None:
        return header
    if request.content_type == "application/x-www-form-urlencoded":
        value = (await request.post()).get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


def safe_next(path: str | None) -> str:
    """A path of this site to return to; anything else (another site, `//host`) is `/`."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


async def admit_page(request: web.Request) -> None:
    """A page is for the signed-in: anyone else is sent to sign in, and back here after."""
    try:
        await admit(request)
    except Unauthorized:
        next_path = urllib.parse.quote(safe_next(request.path_qs), safe="/")
        raise web.HTTPSeeOther(f"{SIGNIN_PATH}?next={next_path}") from None


# --- the pages -------------------------------------------------------------------------------


def _page(title: str, body: str, status: int = 200) -> web.Response:
    document = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>deskmate · {html.escape(title)}</title>"
        '<link rel="stylesheet" href="/webchat/static/signin.css"></head>'
        f'<body><main class="signin"><h1>{html.escape(title)}</h1>{body}</main></body></html>\n'
    )
    return web.Response(text=document, status=status, content_type="text/html",
                        headers=PAGE_HEADERS)  # fmt: skip


def refusal(status: int, reason: str) -> web.Response:
    """Why the sign-in did not happen, and the way to try again."""
    body = (f'<p class="error">{html.escape(reason)}</p>'
            f'<p><a href="{SIGNIN_PATH}">Sign in again</a></p>')  # fmt: skip
    return _page("Not signed in", body, status)


async def choose(request: web.Request) -> web.Response:
    """The providers to sign in with."""
    signin = request.app[SIGNIN]
    next_path = urllib.parse.quote(safe_next(request.query.get("next")), safe="/")
    buttons = "".join(
        f'<p><a class="provider" href="{SIGNIN_PATH}/{client.provider.name}?next={next_path}">'
        f"Sign in with {html.escape(client.provider.label)}</a></p>"
        for client in signin.clients.values()
    )
    note = '<p class="note">You are signed out.</p>' if "signed_out" in request.query else ""
    return _page("Sign in to deskmate", note + buttons)


async def start(request: web.Request) -> web.StreamResponse:
    """Off to the provider, with a fresh state, nonce and PKCE challenge bound to this browser."""
    signin = request.app[SIGNIN]
    client = signin.clients.get(request.match_info["provider"])
    if client is None:
        return refusal(404, "deskmate has no such sign-in provider")
    attempt = new_attempt(client.provider.name, safe_next(request.query.get("next")))
    try:
        target = await client.authorize_url(attempt, signin.redirect_uri(client.provider.name))
    except ProviderUnavailable as exc:
        return refusal(exc.http_status, str(exc))
    browser = await signin.identity.remember_signin(attempt)
    response = web.HTTPFound(target)
    response.set_cookie(SIGNIN_COOKIE, browser, httponly=True, secure=signin.secure_cookies,
                        samesite="Lax", path=SIGNIN_PATH, max_age=600)  # fmt: skip
    raise response


async def callback(request: web.Request) -> web.StreamResponse:
    """Back from the provider: the code redeemed, the ID token checked, the person found in the
    directory by email and a session begun; or a page that says why not."""
    signin = request.app[SIGNIN]
    name = request.match_info["provider"]
    client = signin.clients.get(name)
    browser = request.cookies.get(SIGNIN_COOKIE, "")
    attempt = await signin.identity.take_signin(browser) if browser else None
    state = request.query.get("state", "").encode()
    matches = attempt is not None and secrets.compare_digest(attempt.state.encode(), state)
    if client is None or attempt is None or attempt.provider != name or not matches:
        return refusal(400, "This sign-in was started in another browser, was used already, or "
                            "took longer than ten minutes. Start again.")  # fmt: skip
    if "error" in request.query or not request.query.get("code"):
        said = request.query.get("error", "no code")[:80]
        return refusal(401, f"{client.provider.label} did not sign you in ({said}).")
    try:
        person = await client.identity(request.query["code"], attempt, signin.redirect_uri(name))
        secret, signed = await signin.identity.sign_in(person.email, name)
    except (SigninFailed, ProviderUnavailable, SigninRefused) as exc:
        logger.warning("web sign-in with %s refused: %s", name, exc)
        return refusal(exc.http_status, str(exc))
    if previous := request.cookies.get(SESSION_COOKIE):
        await signin.identity.sign_out(previous)  # never carry an old session id over
    logger.info("web sign-in: user %d with %s", signed.user.id, name)
    response = web.HTTPSeeOther(attempt.next_path)
    _set_session_cookies(response, signin, secret, signed)
    response.del_cookie(SIGNIN_COOKIE, path=SIGNIN_PATH)
    raise response


def _set_session_cookies(
    response: web.StreamResponse, signin: Signin, secret: str, signed: SignedIn
) -> None:
    max_age = int(signin.identity.session_lifetime.total_seconds())
    secure = signin.secure_cookies
    response.set_cookie(SESSION_COOKIE, secret, httponly=True, secure=secure, samesite="Lax",
                        path="/", max_age=max_age)  # fmt: skip
    response.set_cookie(CSRF_COOKIE, signed.csrf_token, httponly=False, secure=secure,
                        samesite="Strict", path="/", max_age=max_age)  # fmt: skip


async def signout(request: web.Request) -> web.StreamResponse:
    """End this browser's session (CSRF token required: a page of another site cannot sign a
    person out) and go back to the sign-in page."""
    await admit(request)
    await request.app[SIGNIN].identity.sign_out(request.cookies.get(SESSION_COOKIE, ""))
    response = web.HTTPSeeOther(f"{SIGNIN_PATH}?signed_out=1")
    response.del_cookie(SESSION_COOKIE, path="/")
    response.del_cookie(CSRF_COOKIE, path="/")
    raise response
