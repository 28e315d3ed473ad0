"""Signed-in browsers of the web surface and the sign-ins on their way through a provider.

Callers pass hashes, never the secrets the cookies hold (bot/web_identity.py makes both).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg

_SESSION_COLUMNS = "tenant_id, user_id, provider, csrf_token, created_at, expires_at"
_ATTEMPT_COLUMNS = "provider, state, nonce, code_verifier, next_path"


@dataclass(frozen=True)
class WebSession:
    tenant_id: int
    user_id: int
    provider: str
    csrf_token: str
    created_at: dt.datetime
    expires_at: dt.datetime


@dataclass(frozen=True)
class SigninAttempt:
    """What the provider's callback must match: the state it echoes, the nonce in the ID token,
    and the PKCE verifier that proves this server asked for the code."""

    provider: str
    state: str
    nonce: str
    code_verifier: str
    next_path: str = "/"


async def create(
    conn: asyncpg.Connection,
    *,
    id_hash: bytes,
    tenant_id: int,
    user_id: int,
    provider: str,
    csrf_token: str,
    lifetime: dt.timedelta,
) -> WebSession:
    """A new session that ends `lifetime` from now."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO web_sessions (id_hash, tenant_id, user_id, provider, csrf_token, expires_at)
        VALUES ($1, $2, $3, $4, $5, now() + $6::interval)
        RETURNING {_SESSION_COLUMNS}
        """,
        id_hash, tenant_id, user_id, provider, csrf_token, lifetime,
    )  # fmt: skip
    return WebSession(**dict(row))


async def find(conn: asyncpg.Connection, id_hash: bytes) -> WebSession | None:
    """The session with that hash, unless it has expired."""
    row = await conn.fetchrow(
        f"SELECT {_SESSION_COLUMNS} FROM web_sessions WHERE id_hash = $1 AND expires_at > now()",
        id_hash,
    )
    return WebSession(**dict(row)) if row else None


async def delete(conn: asyncpg.Connection, id_hash: bytes) -> bool:
    """End one session; False when there was none."""
    return await conn.fetchval(
        "WITH gone AS (DELETE FROM web_sessions WHERE id_hash = $1 RETURNING 1) "
        "SELECT count(*) > 0 FROM gone",
        id_hash,
    )


async def delete_of_user(conn: asyncpg.Connection, tenant_id: int, user_id: int) -> int:
    """End every session of a person (signed out everywhere); how many there were."""
    return await conn.fetchval(
        "WITH gone AS (DELETE FROM web_sessions WHERE tenant_id = $1 AND user_id = $2 "
        "RETURNING 1) SELECT count(*) FROM gone",
        tenant_id,
        user_id,
    )


async def drop_expired(conn: asyncpg.Connection) -> int:
    """Delete ended sessions and abandoned sign-ins (the expiry indexes make it cheap)."""
    sessions = await conn.fetchval(
        "WITH gone AS (DELETE FROM web_sessions WHERE expires_at <= now() RETURNING 1) "
        "SELECT count(*) FROM gone"
    )
    attempts = await conn.fetchval(
        "WITH gone AS (DELETE FROM web_signin_attempts WHERE expires_at <= now() RETURNING 1) "
        "SELECT count(*) FROM gone"
    )
    return int(sessions) + int(attempts)


async def begin_signin(
    conn: asyncpg.Connection,
    *,
    browser_hash: bytes,
    tenant_id: int,
    attempt: SigninAttempt,
    lifetime: dt.timedelta,
) -> None:
    """Remember a sign-in sent to the provider (a browser starting again replaces its own)."""
    await conn.execute(
        """
        INSERT INTO web_signin_attempts (browser_hash, tenant_id, provider, state, nonce,
                                         code_verifier, next_path, expires_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, now() + $8::interval)
        ON CONFLICT (browser_hash) DO UPDATE SET
            provider = EXCLUDED.provider, state = EXCLUDED.state, nonce = EXCLUDED.nonce,
            code_verifier = EXCLUDED.code_verifier, next_path = EXCLUDED.next_path,
            expires_at = EXCLUDED.expires_at
        """,
        browser_hash, tenant_id, attempt.provider, attempt.state, attempt.nonce,
        attempt.code_verifier, attempt.next_path, lifetime,
    )  # fmt: skip


async def take_signin(
    conn: asyncpg.Connection, tenant_id: int, browser_hash: bytes
) -> SigninAttempt | None:
    """The browser's sign-in, deleted as it is read (a callback is answered once), unless it
    has expired."""
    row = await conn.fetchrow(
        f"""
        DELETE FROM web_signin_attempts
        WHERE browser_hash = $1 AND tenant_id = $2
        RETURNING {_ATTEMPT_COLUMNS}, expires_at > now() AS current
        """,
        browser_hash,
        tenant_id,
    )
    if row is None or not row["current"]:
        return None
    return SigninAttempt(**{k: row[k] for k in SigninAttempt.__dataclass_fields__})
