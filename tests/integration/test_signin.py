"""Sign-in on the web surface off loopback (SPEC §9): Sign in with Slack and Microsoft Entra ID
through local fake OpenID Connect providers, the real app on this test's database, a browser's
cookie jar. What a person sees: sent to sign in, signed in as themselves only, refused with a
page that says why, signed out for good; and their own memories to view, edit, export, erase."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from yarl import URL

from bot import roles
from bot.errors import ConfigError
from bot.runtime import Runtime
from bot.settings import Settings, load_settings
from handlers.http import RUNTIME, create_app
from handlers.webchat import Access, access_mode, describe, install
from handlers.webchat.signin import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE
from storage.database import Database
from storage.users import User
from tests.support.factories import add_user, clear_channel
from tests.support.fakes.oidc_provider import FakeOidc
from tests.support.webchat import table_counts

PUBLIC_URL = "https://deskmate.northwind.example"
ALEX = "alex.martin@northwind.example"  # sales
HANA = "hana.schmidt@northwind.example"  # hr


@asynccontextmanager
async def running(fake: FakeOidc) -> AsyncIterator[FakeOidc]:
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield fake
    finally:
        await runner.cleanup()


@dataclass
class Site:
    """deskmate on a non-loopback address with both providers, and a browser to use it."""

    client: TestClient
    db: Database
    slack: FakeOidc
    entra: FakeOidc
    outside: aiohttp.ClientSession  # the browser's trips to the provider

    async def to_provider(self, provider: str = "slack") -> URL:
        """Click "Sign in with …" and sign in at the provider: where it sends the browser back."""
        start = await self.client.get(f"/signin/{provider}", allow_redirects=False)
        assert start.status == 302, await start.text()
        at_provider = await self.outside.get(start.headers["Location"], allow_redirects=False)
        assert at_provider.status == 302, await at_provider.text()
        return URL(at_provider.headers["Location"])

    async def sign_in(self, email: str, provider: str = "slack") -> aiohttp.ClientResponse:
        """The whole trip; returns deskmate's answer to the provider's callback."""
        (self.slack if provider == "slack" else self.entra).email = email
        back = await self.to_provider(provider)
        assert str(back).startswith(f"{PUBLIC_URL}/signin/{provider}/callback?")
        return await self.client.get(back.path_qs, allow_redirects=False)

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.client.session.cookie_jar if c.key == name), None)

    def csrf(self) -> dict[str, str]:
        return {CSRF_HEADER: self.cookie(CSRF_COOKIE) or ""}

    async def sessions(self) -> int:
        async with self.db.pool.acquire() as conn:
            return await conn.fetchval("SELECT count(*) FROM web_sessions")


def _with_signin(settings: Settings, slack: FakeOidc, entra: FakeOidc) -> Settings:
    return settings.model_copy(update={
        "web_public_url": PUBLIC_URL,
        "signin_slack_client_id": slack.client_id,
        "signin_slack_client_secret": SecretStr(slack.client_secret),
        "signin_slack_issuer": slack.url,
        "signin_entra_client_id": entra.client_id,
        "signin_entra_client_secret": SecretStr(entra.client_secret),
        "signin_entra_issuer": entra.url,
    })  # fmt: skip


@pytest.fixture
async def site(settings: Settings, db: Database) -> AsyncIterator[Site]:
    await add_user(db, ALEX, ["sales"])
    await add_user(db, HANA, ["hr"])
    await clear_channel(db, "web", "#sales", "sales")
    await clear_channel(db, "web", "#hr", "hr")
    entra = FakeOidc(client_id="entra-app", email_claim="preferred_username")
    async with running(FakeOidc()) as slack, running(entra):
        runtime = Runtime(_with_signin(settings, slack, entra))
        await runtime.start()
        server = TestServer(create_app(runtime, [install], host="0.0.0.0"))
        await server.start_server()
        # The cookies are Secure; this browser treats the test server as the HTTPS site it is
        # in production (browsers do the same for localhost).
        jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[server.make_url("/")])
        try:
            async with (
                TestClient(server, cookie_jar=jar) as client,
                aiohttp.ClientSession() as outside,
            ):
                yield Site(client, db, slack, entra, outside)
        finally:
            await runtime.stop()


@pytest.fixture
async def alex(site: Site) -> Site:
    """The site with Alex signed in with Slack."""
    signed_in = await site.sign_in(ALEX)
    assert signed_in.status == 303, await signed_in.text()
    return site


# --- signing in ----------------------------------------------------------------------------


async def test_a_visitor_is_sent_to_sign_in_and_the_api_wants_a_session(site: Site) -> None:
    page = await site.client.get("/", allow_redirects=False)
    assert page.status == 303 and page.headers["Location"] == "/signin?next=/"
    choice = await site.client.get("/signin?next=/")
    text = await choice.text()
    assert choice.status == 200
    assert "frame-ancestors 'none'" in choice.headers["Content-Security-Policy"]
    assert "Sign in with Slack" in text and "Sign in with Microsoft" in text
    api = await site.client.get("/webchat/api/users")
    assert api.status == 401 and (await api.json())["error"] == "sign in first: open /signin"
    settings = site.client.app[RUNTIME].settings
    assert access_mode("0.0.0.0", settings) is Access.SIGNIN
    assert describe("0.0.0.0", 3000, settings) == (
        f"{PUBLIC_URL}/  (sign in with Slack or Microsoft)"
    )


async def test_sign_in_with_slack_uses_pkce_and_gives_a_secure_session(site: Site) -> None:
    site.slack.email = ALEX
    start = await site.client.get("/signin/slack?next=/", allow_redirects=False)
    asked = URL(start.headers["Location"]).query
    assert asked["response_type"] == "code" and asked["code_challenge_method"] == "S256"
    assert asked["redirect_uri"] == f"{PUBLIC_URL}/signin/slack/callback"
    assert len(asked["state"]) >= 32 and len(asked["nonce"]) >= 32
    assert "HttpOnly" in start.headers["Set-Cookie"]  # the sign-in is bound to this browser
    at_provider = await site.outside.get(start.headers["Location"], allow_redirects=False)
    back = await site.client.get(URL(at_provider.headers["Location"]).path_qs,
                                 allow_redirects=False)  # fmt: skip
    assert back.status == 303 and back.headers["Location"] == "/"
    cookies = {c.split("=")[0]: c for c in back.headers.getall("Set-Cookie")}
    session = cookies[SESSION_COOKIE]
    assert "HttpOnly" in session and "Secure" in session and "SameSite=Lax" in session
    assert "Secure" in cookies[CSRF_COOKIE] and "HttpOnly" not in cookies[CSRF_COOKIE]
    # The provider got the verifier of the challenge it was shown (it checks them).
    assert site.slack.token_requests[-1]["code_verifier"]
    # The session id is stored hashed: the cookie's value is nowhere in the table.
    async with site.db.pool.acquire() as conn:
        stored = await conn.fetchval("SELECT encode(id_hash, 'hex') FROM web_sessions")
    assert site.cookie(SESSION_COOKIE) not in stored
    assert (await site.client.get("/")).status == 200
    me = await (await site.client.get("/webchat/api/me")).json()
    assert (me["email"], me["provider"], me["role"]) == (ALEX, "slack", "member")
    assert me["csrf_token"] == site.cookie(CSRF_COOKIE)


async def test_sign_in_with_microsoft_maps_the_sign_in_name(site: Site) -> None:
    signed_in = await site.sign_in(HANA.upper(), provider="entra")
    assert signed_in.status == 303
    me = await (await site.client.get("/webchat/api/me")).json()
    assert (me["email"], me["provider"]) == (HANA, "entra")


async def test_an_unknown_email_is_refused_with_a_page_that_says_so(site: Site) -> None:
    refused = await site.sign_in("stranger@elsewhere.example")
    assert refused.status == 403
    text = await refused.text()
    assert "stranger@elsewhere.example is not in deskmate&#x27;s directory" in text
    assert "Sign in again" in text
    assert await site.sessions() == 0
    assert (await site.client.get("/webchat/api/me")).status == 401


@pytest.mark.parametrize(
    ("trouble", "says"),
    [
        ({"tamper": True}, "bad signature"),
        ({"foreign_key": True}, "bad signature"),
        ({"key_id": "a-key-never-published"}, "signed with a key it does not publish"),
        ({"claims": {"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}},
         "has expired"),
        ({"claims": {"aud": "someone-elses-app"}}, "issued to another application"),
        ({"claims": {"iss": "https://issuer.elsewhere.example"}}, "issued by someone else"),
        ({"claims": {"nonce": "a-nonce-of-another-sign-in"}}, "belongs to another sign-in"),
        ({"claims": {"email_verified": False}}, "not verified your email"),
        ({"claims": {"nonce": None}}, "a required claim is missing"),
    ],
)  # fmt: skip
async def test_an_id_token_that_proves_nothing_is_refused(
    site: Site, trouble: dict[str, Any], says: str
) -> None:
    for name, value in trouble.items():
        setattr(site.slack, name, value)
    refused = await site.sign_in(ALEX)
    assert refused.status == 401
    assert says in await refused.text()
    assert await site.sessions() == 0


async def test_a_callback_is_answered_once_and_only_in_the_browser_that_started(
    site: Site,
) -> None:
    site.slack.email = ALEX
    back = await site.to_provider()
    other_browser = await site.outside.get(site.client.make_url(back.path_qs))
    assert other_browser.status == 400 and "another browser" in await other_browser.text()
    wrong_state = back.update_query(state="guessed")
    assert (await site.client.get(wrong_state.path_qs)).status == 400
    # The wrong state used the attempt up: the real callback now finds nothing either.
    assert (await site.client.get(back.path_qs, allow_redirects=False)).status == 400
    assert await site.sessions() == 0


async def test_cancelling_at_the_provider_signs_nobody_in(site: Site) -> None:
    site.slack.deny = True
    refused = await site.sign_in(ALEX)
    assert refused.status == 401 and "Slack did not sign you in (access_denied)" in (
        await refused.text()
    )
    assert await site.sessions() == 0


# --- signed in ---------------------------------------------------------------------------------


async def test_a_state_change_without_the_csrf_token_is_refused(alex: Site) -> None:
    before = await table_counts(alex.client)
    body = {"user": ALEX, "text": "hello team", "channel": "#sales"}
    refused = await alex.client.post("/webchat/api/messages", json=body)
    assert refused.status == 403
    assert "CSRF" in (await refused.json())["error"]
    wrong = await alex.client.post("/webchat/api/messages", json=body,
                                   headers={CSRF_HEADER: "forged"})  # fmt: skip
    assert wrong.status == 403
    assert await table_counts(alex.client) == before
    sent = await alex.client.post("/webchat/api/messages", json=body, headers=alex.csrf())
    assert sent.status == 202, await sent.text()


async def test_acting_as_another_person_is_refused(alex: Site) -> None:
    users = (await (await alex.client.get("/webchat/api/users")).json())["users"]
    assert [u["email"] for u in users] == [ALEX]
    as_hana = {"user": HANA, "text": "what is my salary?"}
    refused = await alex.client.post("/webchat/api/messages", json=as_hana, headers=alex.csrf())
    assert refused.status == 403
    assert (await refused.json())["error"] == (
        f"you are signed in as {ALEX} and can act as yourself only"
    )
    for path in ("/webchat/api/history", "/webchat/api/stream", "/webchat/api/me/memories"):
        assert (await alex.client.get(path, params={"user": HANA})).status == 403, path
    click = {"user": HANA, "kind": "feedback", "value": "up:1"}
    assert (await alex.client.post("/webchat/api/actions", json=click,
                                   headers=alex.csrf())).status == 403  # fmt: skip
    history = await alex.client.get("/webchat/api/history", params={"user": ALEX})
    assert history.status == 200


async def test_a_web_channel_is_open_to_its_members_only(alex: Site) -> None:
    channels = (await (await alex.client.get("/webchat/api/channels")).json())["channels"]
    assert [c["id"] for c in channels] == ["#general", "#sales"]
    into_hr = {"user": ALEX, "text": "hello hr", "channel": "#hr"}
    refused = await alex.client.post("/webchat/api/messages", json=into_hr, headers=alex.csrf())
    assert refused.status == 403
    assert (await refused.json())["error"] == "#hr is open to its members only"
    for path in ("/webchat/api/history", "/webchat/api/stream"):
        got = await alex.client.get(path, params={"user": ALEX, "channel": "#hr"})
        assert got.status == 403, path
    sales = await alex.client.get("/webchat/api/history", params={"user": ALEX,
                                                                  "channel": "#sales"})  # fmt: skip
    assert sales.status == 200
    # A button on a post in #hr cannot be pressed from outside it either.
    async with alex.db.pool.acquire() as conn:
        post_id = await conn.fetchval(
            "INSERT INTO webchat_posts (tenant_id, channel, author_kind, content, payload) "
            "VALUES (1, '#hr', 'bot', 'Payroll closes Friday', $1) RETURNING id",
            {"actions": [{"kind": "feedback", "value": "up:1"}]},
        )
    click = {"user": ALEX, "kind": "feedback", "value": "up:1", "post": post_id}
    pressed = await alex.client.post("/webchat/api/actions", json=click, headers=alex.csrf())
    assert pressed.status == 403


async def test_signing_out_ends_the_session_for_good(alex: Site) -> None:
    stolen = alex.cookie(SESSION_COOKIE)
    assert (await alex.client.post("/signout", allow_redirects=False)).status == 403
    assert await alex.sessions() == 1
    out = await alex.client.post("/signout", headers=alex.csrf(), allow_redirects=False)
    assert out.status == 303 and out.headers["Location"] == "/signin?signed_out=1"
    assert await alex.sessions() == 0
    assert (await alex.client.get("/webchat/api/me")).status == 401
    replayed = await alex.outside.get(alex.client.make_url("/webchat/api/me"),
                                      cookies={SESSION_COOKIE: stolen or ""})  # fmt: skip
    assert replayed.status == 401


async def test_an_expired_or_disabled_session_signs_nobody_in(alex: Site) -> None:
    async with alex.db.pool.acquire() as conn:
        await conn.execute("UPDATE web_sessions SET expires_at = now() - interval '1 second'")
    assert (await alex.client.get("/webchat/api/me")).status == 401
    assert (await alex.sign_in(ALEX)).status == 303
    async with alex.db.pool.acquire() as conn:
        await conn.execute("UPDATE users SET is_active = false WHERE email = $1", ALEX)
    assert (await alex.client.get("/webchat/api/me")).status == 401


# --- one's own data ------------------------------------------------------------------------


async def _remember(site: Site, email: str, *facts: str) -> None:
    runtime = site.client.app[RUNTIME]
    async with site.db.pool.acquire() as conn:
        user_id = await conn.fetchval("SELECT id FROM users WHERE email = $1", email)
    for fact in facts:
        await runtime.conversation.memories.remember(1, user_id, fact)


async def test_one_views_edits_forgets_and_exports_ones_own_memories(alex: Site) -> None:
    await _remember(alex, ALEX, "Manages the Berlin showroom", "Prefers morning meetings")
    await _remember(alex, HANA, "Runs payroll")
    listed = (await (await alex.client.get("/webchat/api/me/memories")).json())["memories"]
    assert sorted(m["content"] for m in listed) == [
        "Manages the Berlin showroom", "Prefers morning meetings",
    ]  # fmt: skip
    showroom = next(m for m in listed if "Berlin" in m["content"])
    path = f"/webchat/api/me/memories/{showroom['id']}"
    edited = await alex.client.patch(path, json={"content": "Manages the Munich showroom"},
                                     headers=alex.csrf())  # fmt: skip
    assert edited.status == 200 and (await edited.json())["memory"]["content"] == (
        "Manages the Munich showroom"
    )
    assert (await alex.client.delete(path, headers=alex.csrf())).status == 200
    hanas = await _memory_ids(alex, HANA)
    someone_elses = f"/webchat/api/me/memories/{hanas[0]}"
    assert (await alex.client.delete(someone_elses, headers=alex.csrf())).status == 404
    export = await alex.client.get("/webchat/api/me/export")
    assert "attachment" in export.headers["Content-Disposition"]
    data = await export.json()
    assert data["person"]["email"] == ALEX
    assert [(m["content"], m["active"]) for m in data["memories"]] == [
        ("Manages the Munich showroom", False), ("Prefers morning meetings", True),
    ]  # fmt: skip
    assert "Runs payroll" not in str(data)


async def test_erasing_all_ones_memories_is_written_to_the_audit_log(alex: Site) -> None:
    await _remember(alex, ALEX, "Manages the Berlin showroom", "Prefers morning meetings")
    await _remember(alex, HANA, "Runs payroll")
    assert (await alex.client.delete("/webchat/api/me/memories")).status == 403  # no CSRF token
    erased = await alex.client.delete("/webchat/api/me/memories", headers=alex.csrf())
    assert (await erased.json()) == {"erased": 2}
    assert await _memory_ids(alex, ALEX) == []
    assert len(await _memory_ids(alex, HANA)) == 1
    async with alex.db.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT actor, action, target_id, before FROM audit_log")
    assert dict(row) == {"actor": f"web:{ALEX}", "action": "memories.erase", "target_id": ALEX,
                         "before": {"memories": 2}}  # fmt: skip


async def _memory_ids(site: Site, email: str) -> list[int]:
    async with site.db.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT m.id FROM memories m JOIN users u ON u.id = m.user_id WHERE u.email = $1 "
            "ORDER BY m.id",
            email,
        )
    return [r["id"] for r in rows]


# --- settings and roles, without a server ----------------------------------------------------


def test_sign_in_settings_say_what_is_missing(tmp_path: Any) -> None:
    base = {"env_file": None, "deskmate_data_dir": tmp_path}
    with pytest.raises(ConfigError, match="SIGNIN_SLACK_CLIENT_ID: needs WEB_PUBLIC_URL"):
        load_settings(**base, signin_slack_client_id="c", signin_slack_client_secret="s")
    with pytest.raises(ConfigError, match="SIGNIN_SLACK_CLIENT_SECRET: must be set when"):
        load_settings(**base, web_public_url=PUBLIC_URL, signin_slack_client_id="c")
    with pytest.raises(ConfigError, match="WEB_PUBLIC_URL: must be an https:// URL"):
        load_settings(**base, web_public_url="http://deskmate.example")
    with pytest.raises(ConfigError, match="SIGNIN_ENTRA_ISSUER: set SIGNIN_ENTRA_TENANT_ID"):
        load_settings(**base, web_public_url=PUBLIC_URL, signin_entra_client_id="c",
                      signin_entra_client_secret="s")  # fmt: skip
    entra = load_settings(**base, web_public_url=PUBLIC_URL + "/", signin_entra_client_id="c",
                          signin_entra_client_secret="s", signin_entra_tenant_id="t-1")  # fmt: skip
    assert entra.signin_entra_issuer == "https://login.microsoftonline.com/t-1/v2.0"
    assert entra.web_public_url == PUBLIC_URL and entra.signin_enabled
    assert load_settings(**base).signin_slack_issuer == "https://slack.com"
    local = load_settings(**base, web_public_url="http://127.0.0.1:3000")
    assert local.web_public_url == "http://127.0.0.1:3000"


def _user(**fields: Any) -> User:
    defaults: dict[str, Any] = {
        "id": 1, "tenant_id": 1, "email": "a@x.example", "display_name": "A", "timezone": "UTC",
        "department_access": ("sales",), "dept_head_for": (), "is_super_user": False,
        "is_active": True,
    }  # fmt: skip
    return User(**(defaults | fields))


def test_roles_super_user_department_head_and_everyone_else() -> None:
    member, head = _user(), _user(id=2, dept_head_for=("sales",))
    boss = _user(id=3, is_super_user=True, department_access=())
    assert [roles.role_of(u) for u in (member, head, boss)] == [
        roles.Role.MEMBER, roles.Role.DEPARTMENT_HEAD, roles.Role.SUPER_USER,
    ]  # fmt: skip
    assert roles.may_manage(head, "sales") and not roles.may_manage(head, "hr")
    assert roles.may_manage(boss, "hr") and not roles.may_manage(member, "sales")
    assert roles.may_administer(boss) and not roles.may_administer(head)
    assert roles.may_open_console(head) and not roles.may_open_console(member)
    assert roles.may_see_person(head, member) and not roles.may_see_person(member, head)
    assert not roles.may_manage(_user(is_super_user=True, is_active=False), "hr")
    assert roles.may_join_channel(member, ["sales"], ["general"])
    assert roles.may_join_channel(member, ["general"], ["general"])
    assert not roles.may_join_channel(member, ["hr"], ["general"])
    assert not roles.may_join_channel(member, [], ["general"])
    assert roles.may_join_channel(boss, [], ["general"])


async def test_on_loopback_the_demo_picker_stays_and_own_data_follows_it(
    settings: Settings, db: Database
) -> None:
    await add_user(db, ALEX, ["sales"])
    runtime = Runtime(settings)
    await runtime.start()
    try:
        async with TestClient(TestServer(create_app(runtime, [install]))) as client:
            assert (await (await client.get("/webchat/api/me")).json()) == {"signed_in": False}
            assert (await client.get("/", allow_redirects=False)).status == 200
            user_id = await client.app[RUNTIME].db.pool.fetchval(
                "SELECT id FROM users WHERE email = $1", ALEX
            )
            await runtime.conversation.memories.remember(1, user_id, "Manages the showroom")
            mine = await client.get("/webchat/api/me/memories", params={"user": ALEX})
            assert [m["content"] for m in (await mine.json())["memories"]] == [
                "Manages the showroom"
            ]
            assert (await client.get("/signin")).status == 404
    finally:
        await runtime.stop()
