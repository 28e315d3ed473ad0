"""Who is looking at the admin console, and whether they may.

Who is looking follows the web chat's access mode: off loopback with sign-in, the signed-in
person (their session and CSRF token); on loopback (the demo), the longest-standing active super
user of the directory, with a CSRF token of this process; in token mode the console is off, as
a shared token says nobody's name. Every POST carries the CSRF token, as the header
`X-CSRF-Token` or the form field `csrf_token`.
"""

from __future__ import annotations

import secrets
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from bot import roles
from bot.console import Console
from bot.errors import DeskmateError
from bot.runtime import Runtime
from handlers.console.render import e, page
from handlers.webchat import Access, is_loopback
from handlers.webchat import signin as web_signin
from storage.users import User


class Forbidden(DeskmateError):
    http_status = 403


@dataclass(frozen=True)
class Viewer:
    """The person looking, and the token their forms carry."""

    user: User
    csrf: str
    signed_in: bool  # False: the loopback demo


@dataclass
class ConsoleState:
    runtime: Runtime
    console: Console
    access: Access
    # The demo's CSRF token: a page of another site can make this machine's browser post to
    # 127.0.0.1, never read this token from a console page.
    demo_csrf: str


CONSOLE = web.AppKey("console", ConsoleState)
VIEWER = web.RequestKey("console_viewer", Viewer)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def who(request: web.Request) -> Viewer:
    """The viewer of a console request; Forbidden for anyone the console is not for."""
    state = request.app[CONSOLE]
    if state.access is Access.SIGNIN:
        signin = request.app[web_signin.SIGNIN]
        cookie = request.cookies.get(web_signin.SESSION_COOKIE, "")
        signed = await signin.identity.signed_in(cookie)
        if signed is None:
            raise web_signin.Unauthorized(f"sign in first: open {web_signin.SIGNIN_PATH}")
        viewer = Viewer(signed.user, signed.csrf_token, signed_in=True)
    elif state.access is Access.OPEN:
        if not is_loopback(request.url.host or ""):
            raise Forbidden("the console answers on localhost addresses only")
        demo = await state.console.demo_viewer()
        if demo is None:
            raise Forbidden("the directory has no active super user to open the console as")
        viewer = Viewer(demo, state.demo_csrf, signed_in=False)
    else:
        raise Forbidden("the admin console needs sign-in (or a loopback address)")
    if not roles.may_open_console(viewer.user):
        raise Forbidden("the admin console is for super users and department heads")
    if request.method not in web_signin.SAFE_METHODS:
        await _check_csrf(request, viewer.csrf)
    return viewer


async def _check_csrf(request: web.Request, expected: str) -> None:
    presented = request.headers.get(web_signin.CSRF_HEADER)
    if presented is None and request.content_type in (
        "application/x-www-form-urlencoded", "multipart/form-data",
    ):  # fmt: skip
        value = (await request.post()).get(web_signin.CSRF_FIELD)
        presented = value if isinstance(value, str) else None
    if not presented or not secrets.compare_digest(presented.encode(), expected.encode()):
        raise Forbidden("this request has no valid CSRF token: reload the page and try again")


def console_page(handler: Handler) -> Handler:
    """The viewer checked first; a refusal or a failed change rendered as a page with its
    status (a visitor off loopback without a session is sent to sign in)."""

    async def check_then_handle(request: web.Request) -> web.StreamResponse:
        try:
            request[VIEWER] = await who(request)
            return await handler(request)
        except web_signin.Unauthorized:
            if request.method == "GET":
                next_path = urllib.parse.quote(web_signin.safe_next(request.path_qs), safe="/")
                raise web.HTTPSeeOther(f"{web_signin.SIGNIN_PATH}?next={next_path}") from None
            raise
        except DeskmateError as exc:
            viewer = request.get(VIEWER)
            return page("Not possible", "", f'<p class="error">{e(exc)}</p>',
                        who=viewer.user.email if viewer else "", csrf="",
                        signout=False, status=exc.http_status)  # fmt: skip

    return check_then_handle
