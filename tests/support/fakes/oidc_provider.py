"""A local fake OpenID Connect provider, the way Slack and Microsoft Entra ID answer: discovery,
JWKS, an authorization endpoint that signs in whoever the test chose, and a token endpoint
that checks the client secret and the PKCE verifier and issues RS256-signed ID tokens.

A test can make the next ID token go wrong: `claims` overrides or removes claims (None removes
one), `tamper` changes its payload after signing, `foreign_key` signs it with a key the JWKS
does not publish (under the published key's id), `key_id` names another key in its header,
`deny` makes the person cancel at the provider.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

KEY_ID = "fake-key-1"


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Grant:
    """What the authorization endpoint was asked for, to be checked when the code comes back."""

    redirect_uri: str
    challenge: str
    nonce: str
    email: str


@dataclass
class FakeOidc:
    client_id: str = "deskmate-web"
    client_secret: str = "fake-client-secret"
    # Who signs in at the provider next, and the claim the email goes in (Entra: often
    # `preferred_username`).
    email: str = ""
    email_claim: str = "email"
    claims: dict[str, Any] = field(default_factory=dict)
    tamper: bool = False
    foreign_key: bool = False
    key_id: str = KEY_ID
    deny: bool = False
    url: str = ""  # the issuer; set when the server starts
    key: rsa.RSAPrivateKey = field(default_factory=_new_key)
    grants: dict[str, Grant] = field(default_factory=dict)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self.discovery)
        app.router.add_get("/jwks", self.jwks)
        app.router.add_get("/authorize", self.authorize)
        app.router.add_post("/token", self.token)
        return app

    async def discovery(self, request: web.Request) -> web.Response:
        return web.json_response({
            "issuer": self.url, "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token", "jwks_uri": f"{self.url}/jwks",
            "response_types_supported": ["code"], "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["RS256"],
        })  # fmt: skip

    async def jwks(self, request: web.Request) -> web.Response:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return web.json_response({"keys": [public | {"kid": KEY_ID, "use": "sig", "alg": "RS256"}]})

    async def authorize(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.authorize_requests.append(query)
        back = query["redirect_uri"]
        if query.get("client_id") != self.client_id or query.get("response_type") != "code":
            return web.Response(status=400, text="unknown client or response type")
        if self.deny:
            return self._back(back, {"error": "access_denied", "state": query["state"]})
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return web.Response(status=400, text="PKCE (S256) is required")
        code = secrets.token_urlsafe(16)
        self.grants[code] = Grant(back, query["code_challenge"], query["nonce"], self.email)
        return self._back(back, {"code": code, "state": query["state"]})

    @staticmethod
    def _back(redirect_uri: str, params: dict[str, str]) -> web.Response:
        raise web.HTTPFound(f"{redirect_uri}?{urllib.parse.urlencode(params)}")

    async def token(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.token_requests.append(form)
        grant = self.grants.pop(form.get("code", ""), None)
        if grant is None or form.get("grant_type") != "authorization_code":
            return web.json_response({"error": "invalid_grant"}, status=400)
        if (form.get("client_id"), form.get("client_secret")) != (
            self.client_id, self.client_secret
        ):  # fmt: skip
            return web.json_response({"error": "invalid_client"}, status=401)
        verifier = form.get("code_verifier", "").encode()
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier).digest()).rstrip(b"=")
        if challenge.decode() != grant.challenge or form.get("redirect_uri") != grant.redirect_uri:
            return web.json_response({"error": "invalid_grant"}, status=400)
        return web.json_response({"access_token": "fake-access", "token_type": "Bearer",
                                  "id_token": self.id_token(grant)})  # fmt: skip

    def id_token(self, grant: Grant) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url, "aud": self.client_id, "sub": f"U-{grant.email}", "iat": now,
            "exp": now + 300, "nonce": grant.nonce, self.email_claim: grant.email,
            "email_verified": True, "name": grant.email.split("@")[0],
        }  # fmt: skip
        for name, value in self.claims.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        key = _new_key() if self.foreign_key else self.key
        token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.key_id})
        return _tampered(token) if self.tamper else token


def _tampered(token: str) -> str:
    """The same token with its email changed and its signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["email"] = "root@northwind.example"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"
