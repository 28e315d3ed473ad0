"""OpenID Connect for the web surface's sign-in (Sign in with Slack, Microsoft Entra ID): the
provider's discovery document, the authorization request (code flow with PKCE, state and
nonce), the code exchange, and the ID token checked against the provider's published keys.

Only what the provider signed is believed: the email comes from the ID token, whose signature,
issuer, audience, expiry and nonce are all checked here, never from the token response around it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt

from bot.errors import DeskmateError
from bot.settings import Settings
from storage.web_sessions import SigninAttempt

# Both providers sign with RS256; a token naming any other algorithm (`none`, HS256 with the
# public key as secret) is refused before its signature is looked at.
ALGORITHMS = ["RS256"]
# Clocks of this machine and the provider's may differ a little.
LEEWAY_SECONDS = 60
# An unknown key id makes us fetch the keys again (the provider rotated them), at most this often.
JWKS_REFRESH_SECONDS = 60.0
HTTP_TIMEOUT = aiohttp.ClientTimeout(total=10)


class SigninFailed(DeskmateError):
    """The provider's answer does not prove who is signing in."""

    http_status = 401


class ProviderUnavailable(DeskmateError):
    http_status = 502


@dataclass(frozen=True)
class Provider:
    name: str  # in URLs and in the session: slack, entra
    label: str  # on the button: "Sign in with …"
    issuer: str
    client_id: str
    client_secret: str
    scope: str = "openid email profile"


def providers(settings: Settings) -> list[Provider]:
    """The configured providers, Slack first."""
    found = []
    if settings.signin_slack_client_id and settings.signin_slack_client_secret:
        found.append(Provider("slack", "Slack", settings.signin_slack_issuer,
                              settings.signin_slack_client_id,
                              settings.signin_slack_client_secret.get_secret_value()))  # fmt: skip
    if (settings.signin_entra_client_id and settings.signin_entra_client_secret
            and settings.signin_entra_issuer):  # fmt: skip
        found.append(Provider("entra", "Microsoft", settings.signin_entra_issuer,
                              settings.signin_entra_client_id,
                              settings.signin_entra_client_secret.get_secret_value()))  # fmt: skip
    return found


@dataclass(frozen=True)
class Endpoints:
    issuer: str
    authorization: str
    token: str
    jwks: str


@dataclass(frozen=True)
class Identity:
    """Who the provider vouches for."""

    email: str
    subject: str


def new_attempt(provider: str, next_path: str) -> SigninAttempt:
    """Fresh state, nonce and PKCE verifier for one trip through the provider."""
    return SigninAttempt(
        provider=provider, state=secrets.token_urlsafe(32), nonce=secrets.token_urlsafe(32),
        code_verifier=secrets.token_urlsafe(64), next_path=next_path,
    )  # fmt: skip


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 S256: the provider keeps this; only the verifier's holder can redeem the code."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def email_of(provider: str, claims: dict[str, Any]) -> str:
    """The verified email the ID token names. Entra puts it in `email` when the account has
    one, else the sign-in name (`preferred_username`) of the configured tenant is the address."""
    email = claims.get("email")
    if provider == "entra" and not email:
        email = claims.get("preferred_username")
    if claims.get("email_verified") in (False, "false"):
        raise SigninFailed("the provider has not verified your email address")
    if not isinstance(email, str) or "@" not in email:
        raise SigninFailed("the provider did not tell deskmate your email address")
    return email.strip().lower()


class OidcClient:
    """One provider, its discovery document and signing keys cached for the process."""

    def __init__(self, provider: Provider, http: Callable[[], aiohttp.ClientSession]) -> None:
        self.provider = provider
        self.http = http
        self._endpoints: Endpoints | None = None
        self._keys: dict[str, jwt.PyJWK] = {}
        self._keys_fetched = 0.0
        self._lock = asyncio.Lock()

    async def endpoints(self) -> Endpoints:
        """The provider's endpoints from `/.well-known/openid-configuration` (fetched once)."""
        if self._endpoints is None:
            found = await self._get_json(f"{self.provider.issuer}/.well-known/openid-configuration")
            try:
                endpoints = Endpoints(
                    str(found["issuer"]), str(found["authorization_endpoint"]),
                    str(found["token_endpoint"]), str(found["jwks_uri"]),
                )  # fmt: skip
            except (KeyError, TypeError):
                raise ProviderUnavailable(f"{self.provider.label}'s discovery document is "
                                          "incomplete") from None  # fmt: skip
            # OpenID Connect Discovery §4.3: a document naming another issuer is not this one's.
            if endpoints.issuer.rstrip("/") != self.provider.issuer.rstrip("/"):
                raise ProviderUnavailable(f"{self.provider.label}'s discovery document names "
                                          "another issuer")  # fmt: skip
            self._endpoints = endpoints
        return self._endpoints

    async def authorize_url(self, attempt: SigninAttempt, redirect_uri: str) -> str:
        """Where to send the browser: the provider's sign-in, then back to `redirect_uri`."""
        endpoint = (await self.endpoints()).authorization
        query = urllib.parse.urlencode({
            "response_type": "code", "client_id": self.provider.client_id,
            "redirect_uri": redirect_uri, "scope": self.provider.scope, "state": attempt.state,
            "nonce": attempt.nonce, "code_challenge": pkce_challenge(attempt.code_verifier),
            "code_challenge_method": "S256",
        })  # fmt: skip
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    async def identity(self, code: str, attempt: SigninAttempt, redirect_uri: str) -> Identity:
        """Redeem the code for an ID token and return the person it proves."""
        token = await self._exchange(code, attempt.code_verifier, redirect_uri)
        claims = await self.verify(token, attempt.nonce)
        return Identity(email_of(self.provider.name, claims), str(claims["sub"]))

    async def verify(self, token: str, nonce: str) -> dict[str, Any]:
        """The ID token's claims once its signature, issuer, audience, times and nonce hold."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise SigninFailed("the provider's ID token is not a token") from None
        if header.get("alg") not in ALGORITHMS:
            raise SigninFailed("the provider's ID token is not signed the way it should be")
        key = await self._key(str(header.get("kid", "")))
        issuer = (await self.endpoints()).issuer
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key.key, algorithms=ALGORITHMS, audience=self.provider.client_id,
                issuer=issuer, leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "nonce"]},
            )  # fmt: skip
        except jwt.ExpiredSignatureError:
            raise SigninFailed("the provider's ID token has expired: sign in again") from None
        except jwt.InvalidTokenError as exc:
            raise SigninFailed(f"the provider's ID token was refused ({_reason(exc)})") from None
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != self.provider.client_id:
            raise SigninFailed("the provider's ID token was issued to another application")
        if not secrets.compare_digest(str(claims["nonce"]), nonce):
            raise SigninFailed("the provider's ID token belongs to another sign-in")
        return claims

    async def _exchange(self, code: str, verifier: str, redirect_uri: str) -> str:
        form = {
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "client_id": self.provider.client_id, "client_secret": self.provider.client_secret,
            "code_verifier": verifier,
        }  # fmt: skip
        endpoint = (await self.endpoints()).token
        try:
            async with self.http().post(endpoint, data=form, timeout=HTTP_TIMEOUT) as response:
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            raise ProviderUnavailable(f"could not reach {self.provider.label}") from None
        token = body.get("id_token") if isinstance(body, dict) else None
        if not isinstance(token, str):
            error = body.get("error") if isinstance(body, dict) else None
            raise SigninFailed(f"{self.provider.label} did not accept the sign-in"
                               + (f" ({str(error)[:80]})" if error else ""))  # fmt: skip
        return token

    async def _key(self, kid: str) -> jwt.PyJWK:
        async with self._lock:
            stale = time.monotonic() - self._keys_fetched > JWKS_REFRESH_SECONDS
            if kid not in self._keys and stale:
                await self._fetch_keys()
        if kid not in self._keys:
            raise SigninFailed("the provider's ID token is signed with a key it does not publish")
        return self._keys[kid]

    async def _fetch_keys(self) -> None:
        document = await self._get_json((await self.endpoints()).jwks)
        try:
            keys = jwt.PyJWKSet.from_dict(document).keys
        except (jwt.PyJWKError, jwt.PyJWKSetError, TypeError, KeyError):
            label = self.provider.label
            raise ProviderUnavailable(f"{label}'s signing keys are unreadable") from None
        self._keys = {str(k.key_id): k for k in keys if k.key_id}
        self._keys_fetched = time.monotonic()

    async def _get_json(self, url: str) -> Any:
        try:
            async with self.http().get(url, timeout=HTTP_TIMEOUT) as response:
                response.raise_for_status()
                return await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            raise ProviderUnavailable(f"could not reach {self.provider.label}") from None


def _reason(exc: jwt.InvalidTokenError) -> str:
    """PyJWT's reason in a few words, without the token."""
    reasons = {
        jwt.InvalidAudienceError: "issued to another application",
        jwt.InvalidIssuerError: "issued by someone else",
        jwt.InvalidSignatureError: "bad signature",
        jwt.ImmatureSignatureError: "not valid yet",
        jwt.MissingRequiredClaimError: "a required claim is missing",
    }
    return next((text for kind, text in reasons.items() if isinstance(exc, kind)), "malformed")
