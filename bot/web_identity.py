"""Who is signed in to the web surface (SPEC §9): a person a provider vouched for, mapped to the
directory by email, and the browser session that remembers them.

A browser holds random secrets (the session id, the id of a sign-in on its way); PostgreSQL
holds only their SHA-256, so reading the table signs nobody in.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from bot import tenancy
from bot.errors import DeskmateError
from storage import users, web_sessions
from storage.database import Database
from storage.web_sessions import SigninAttempt

# How long a person may take at the provider's sign-in page.
SIGNIN_MINUTES = 10


class SigninRefused(DeskmateError):
    """The provider vouched for someone deskmate does not know (or who was disabled)."""

    http_status = 403


@dataclass(frozen=True)
class SignedIn:
    """A browser's person, and the token its state-changing requests must carry."""

    user: users.User
    provider: str
    csrf_token: str
    expires_at: dt.datetime


def digest(secret: str) -> bytes:
    """What is stored of a browser's secret."""
    return hashlib.sha256(secret.encode()).digest()


def new_secret() -> str:
    """256 random bits, URL- and cookie-safe."""
    return secrets.token_urlsafe(32)


class WebIdentity:
    """Sign-ins and sessions of one tenant's web surface."""

    def __init__(self, db: Database, tenant: str, *, session_lifetime: dt.timedelta) -> None:
        self.db = db
        self.tenant = tenant
        self.session_lifetime = session_lifetime

    async def remember_signin(self, attempt: SigninAttempt) -> str:
        """Keep a sign-in sent to the provider; returns the secret for the browser's cookie."""
        browser = new_secret()
        tenant_id = await tenancy.tenant_id(self.db, self.tenant)
        async with self.db.transaction() as conn:
            await web_sessions.drop_expired(conn)
            await web_sessions.begin_signin(
                conn, browser_hash=digest(browser), tenant_id=tenant_id, attempt=attempt,
                lifetime=dt.timedelta(minutes=SIGNIN_MINUTES),
            )  # fmt: skip
        return browser

    async def take_signin(self, browser: str) -> SigninAttempt | None:
        """The browser's sign-in, once; None when it has none, used it or took too long."""
        tenant_id = await tenancy.tenant_id(self.db, self.tenant)
        async with self.db.pool.acquire() as conn:
            return await web_sessions.take_signin(conn, tenant_id, digest(browser))

    async def sign_in(self, email: str, provider: str) -> tuple[str, SignedIn]:
        """A new session for the active directory user with that email; returns the secret for
        the browser's cookie. SigninRefused when the directory has no such person."""
        tenant_id = await tenancy.tenant_id(self.db, self.tenant)
        secret, csrf = new_secret(), new_secret()
        async with self.db.transaction() as conn:
            user = await users.get_by_email(conn, tenant_id, email.strip().lower())
            if user is None or not user.is_active:
                raise SigninRefused(
                    f"{email} is not in deskmate's directory: ask an administrator to add you "
                    "(deskmate users add), then sign in again"
                )
            session = await web_sessions.create(
                conn, id_hash=digest(secret), tenant_id=tenant_id, user_id=user.id,
                provider=provider, csrf_token=csrf, lifetime=self.session_lifetime,
            )  # fmt: skip
        return secret, SignedIn(user, provider, session.csrf_token, session.expires_at)

    async def signed_in(self, secret: str) -> SignedIn | None:
        """The person of a session cookie; None when it is unknown, expired, or its person was
        disabled since."""
        if not secret:
            return None
        async with self.db.pool.acquire() as conn:
            session = await web_sessions.find(conn, digest(secret))
            if session is None:
                return None
            user = await users.get_by_id(conn, session.tenant_id, session.user_id)
        if user is None or not user.is_active:
            return None
        return SignedIn(user, session.provider, session.csrf_token, session.expires_at)

    async def sign_out(self, secret: str) -> bool:
        """End the browser's session; False when it had none."""
        async with self.db.pool.acquire() as conn:
            return await web_sessions.delete(conn, digest(secret))

    async def sign_out_everywhere(self, user: users.User) -> int:
        """End every session of the person; how many there were."""
        async with self.db.pool.acquire() as conn:
            return await web_sessions.delete_of_user(conn, user.tenant_id, user.id)
