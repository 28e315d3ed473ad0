"""The door of `POST /api/messages`: what is refused before the Agents SDK reads a request.

The SDK's token check assumes a Bot Framework token: it looks the signing key up by the header's
`kid` and only then learns that the algorithm is not RS256, so a token without a key id
(`alg=none`, an HS256 token) raised KeyError, a 500. Bot Framework signs with RS256 and names
its key; anything else is refused here with the SDK's own 401. The body is read (and its size
checked) before the SDK parses it, because the SDK turns any read error into a 400.
"""

from __future__ import annotations

import functools
from typing import Any

import jwt
from aiohttp import web

from handlers.http import MAX_REQUEST_BYTES, Handler

# The only signature Bot Framework and Entra tokens carry.
ACCEPTED_ALGORITHM = "RS256"
# What the SDK answers for any token it refuses; ours is indistinguishable from it.
REFUSED = {"error": "Invalid token or authentication failed."}


def bearer_token(header: str) -> str | None:
    """The token of an `Authorization: Bearer …` header (None for any other shape)."""
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or any(c.isspace() for c in token):
        return None
    return token


def signed_like_bot_framework(header: str) -> bool:
    """Whether a token's header could be Bot Framework's: RS256 and a named signing key.
    Nothing is verified here; the SDK still checks the signature, audience and issuer."""
    token = bearer_token(header)
    if token is None:
        return False
    try:
        fields: dict[str, Any] = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return False
    kid = fields.get("kid")
    return fields.get("alg") == ACCEPTED_ALGORITHM and isinstance(kid, str) and bool(kid)


def token_gate(handler: Handler) -> Handler:
    """Refuse, before the SDK's check, a token the SDK could not even look a key up for."""

    @functools.wraps(handler)
    async def gate(request: web.Request) -> web.StreamResponse:
        header = request.headers.get("Authorization")
        if header is not None and not signed_like_bot_framework(header):
            return web.json_response(REFUSED, status=401)
        return await handler(request)

    return gate


async def read_body(request: web.Request) -> None:
    """Read the whole body now: past the app's size limit this raises 413 (aiohttp's
    HTTPRequestEntityTooLarge); the SDK's later read is then served from memory."""
    size = request.content_length
    if size is not None and size > MAX_REQUEST_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_REQUEST_BYTES, actual_size=size)
    await request.read()
