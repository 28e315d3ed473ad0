"""The admin console and the web chat in a real browser, signed in: headless Chromium (Debian's,
via Playwright's `executable_path`) against the service in-process, bound so that it asks people
to sign in (sign-in mode, not the loopback demo), through a local fake OpenID Connect provider.
The browser reaches deskmate at its public URL (WEB_PUBLIC_URL, http://127.0.0.1:port) and signs
in at the provider the way a person does. The demo organisation: Robin Admin is the super user,
Hana Schmidt heads hr, Eli Novak heads nothing.

Not collected by `make test` (the file name does not match `test_*.py`): `make e2e` runs it.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from playwright import async_api as playwright_api
from playwright.async_api import FilePayload
from pydantic import SecretStr

from bot import demo
from bot.runtime import Runtime
from bot.settings import Settings
from deskmate.platforms import installers
from handlers.http import create_app
from handlers.webchat.signin import CSRF_COOKIE, CSRF_HEADER
from tests.e2e.webchat_browser import CHROMIUM, CHROMIUM_ARGS, HANA
from tests.integration.test_signin import running
from tests.support.fakes.oidc_provider import FakeOidc

ROBIN = "robin.admin@northwind.example"  # super user
ELI = "eli.novak@northwind.example"  # reads engineering, heads nothing
BEEHIVES_MD = b"""# Rooftop beehives
Staff who look after the rooftop beehives get two hours of paid beekeeping time every week.
"""
BEEHIVES_QUESTION = "How much paid beekeeping time do the rooftop beehive keepers get?"


@dataclass
class Service:
    url: str  # the public URL, where browsers reach deskmate
    runtime: Runtime
    provider: FakeOidc


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[Service]:
    """`deskmate serve` off loopback with Sign in with Slack (the fake provider), the demo
    organisation, an unanswered question and a firing alert."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    async with running(FakeOidc()) as provider:
        signin = settings.model_copy(update={
            "web_public_url": url,
            "signin_slack_client_id": provider.client_id,
            "signin_slack_client_secret": SecretStr(provider.client_secret),
            "signin_slack_issuer": provider.url,
        })  # fmt: skip
        runtime = Runtime(signin)
        await runtime.start()
        runner = None
        try:
            await demo.seed(runtime)
            async with runtime.db.pool.acquire() as conn:
                await conn.execute("""
                    INSERT INTO query_log (tenant_id, user_id, platform, query_text,
                                           answer_status)
                    SELECT 1, id, 'web', 'Where can I park my bicycle?', 'no_context'
                    FROM users WHERE email = $1
                """, ELI)  # fmt: skip
                await conn.execute("""
                    INSERT INTO alert_instances (tenant_id, rule_id, state, started_at,
                                                 threshold, message)
                    SELECT 1, id, 'firing', now(), threshold, 'Claude errors above 10 %'
                    FROM alert_rules WHERE name = 'LLM errors'
                """)  # fmt: skip
            # Bound to every interface (as in production): sign-in mode. The browser comes in
            # through the public URL's loopback socket.
            app = create_app(runtime, installers(signin), host="0.0.0.0")
            runner = web.AppRunner(app, shutdown_timeout=2)
            await runner.setup()
            await web.SockSite(runner, listener).start()
            yield Service(url, runtime, provider)
        finally:
            if runner is not None:
                await runner.cleanup()
            await runtime.stop()
            listener.close()


@pytest.fixture
async def browser() -> AsyncIterator[playwright_api.Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium")
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield browser
        await browser.close()


async def signed_in(
    browser: playwright_api.Browser, service: Service, email: str, path: str
) -> playwright_api.Page:
    """A fresh browser profile that opens `path`, is sent to sign in, and signs in as `email`
    at the provider; it ends back on `path`."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(f"{service.url}{path}")
    await playwright_api.expect(page).to_have_url(f"{service.url}/signin?next={path}")
    service.provider.email = email
    await page.click("text=Sign in with Slack")
    await playwright_api.expect(page).to_have_url(f"{service.url}{path}")
    return page


async def csrf(page: playwright_api.Page) -> dict[str, str]:
    cookies = await page.context.cookies()
    return {CSRF_HEADER: next(c["value"] for c in cookies if c["name"] == CSRF_COOKIE)}


async def ask(page: playwright_api.Page, question: str) -> playwright_api.Locator:
    """Ask in the web chat DM; the answer once it is complete."""
    answers = page.locator("article.post.bot:not(.pending)")
    before = await answers.count()
    await page.fill("#text", question)
    await page.press("#text", "Enter")
    await playwright_api.expect(answers).to_have_count(before + 1)
    answer = answers.last
    await playwright_api.expect(answer.locator(".text")).not_to_be_empty()
    return answer


async def test_a_super_user_runs_the_console_and_an_answer_cites_an_upload(
    service: Service, browser: playwright_api.Browser
) -> None:
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    console = await signed_in(browser, service, ROBIN, "/console")
    await expect(console.locator("header .who")).to_have_text(f"{ROBIN} (super user)")
    await expect(console.locator("figure svg")).to_have_count(4)

    await console.click("header >> text=Unanswered")
    await expect(console.locator("main")).to_contain_text("Where can I park my bicycle?")
    await expect(console.locator("main")).to_contain_text(ELI)

    # Upload a handbook page; the web chat (same browser, same session) cites it.
    await console.click("header >> text=Documents")
    await console.select_option("select[name=department]", "hr")
    beehives = FilePayload(name="beehives.md", mimeType="text/markdown", buffer=BEEHIVES_MD)
    await console.set_input_files("input[type=file]", files=[beehives])
    await console.click("form[action='/console/documents'] button")
    row = console.locator("tr", has=console.locator("td a", has_text="Rooftop beehives"))
    await expect(row).to_have_count(1)

    chat = await console.context.new_page()
    await chat.goto(f"{service.url}/")
    await expect(chat.locator("body[data-ready]")).to_have_count(1)
    await expect(chat.locator("#user option")).to_have_count(1)  # oneself only
    await expect(chat.locator("#user")).to_have_value(ROBIN)
    await expect(chat.locator("#mode")).to_have_text("offline mode")
    answer = await ask(chat, BEEHIVES_QUESTION)
    cited = answer.locator(".sources .label", has_text="Rooftop beehives")
    await expect(cited).not_to_have_count(0)
    await expect(answer.locator(".text")).to_contain_text("beekeeping")

    # Deleted in the console, it is no longer found.
    await row.locator("button", has_text="Delete").click()
    await expect(console.locator("td a", has_text="Rooftop beehives")).to_have_count(0)
    again = await ask(chat, BEEHIVES_QUESTION)
    await expect(again.locator(".sources .label", has_text="Rooftop beehives")).to_have_count(0)
    await expect(again.locator(".text")).not_to_contain_text("beekeeping time")

    # A firing alert is acknowledged, under the super user's name.
    await console.click("header >> text=Alerts")
    episode = console.locator("tr", has_text="Claude errors above 10 %")
    await episode.locator("button", has_text="Acknowledge").click()
    await expect(episode.locator("td").last).to_have_text(ROBIN)
    await console.click("header >> text=Audit log")
    await expect(console.locator("td", has_text="document.delete")).not_to_have_count(0)


async def test_a_head_keeps_to_their_department_and_a_member_to_themselves(
    service: Service, browser: playwright_api.Browser
) -> None:
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    async with service.runtime.db.pool.acquire() as conn:
        sales_doc = await conn.fetchval("SELECT min(id) FROM documents WHERE department = 'sales'")
    assert sales_doc is not None

    # Hana heads hr: her console shows hr, and sales stays shut.
    hana = await signed_in(browser, service, HANA, "/console/documents")
    await expect(hana.locator("header .who")).to_contain_text(HANA)
    await expect(hana.locator("select[name=department] option[value=sales]")).to_have_count(0)
    await expect(hana.locator("td", has_text="sales")).to_have_count(0)
    shown = await hana.goto(f"{service.url}/console?department=sales")
    assert shown is not None and shown.status == 403
    shown = await hana.goto(f"{service.url}/console/documents/{sales_doc}")
    assert shown is not None and shown.status == 403
    token = (await csrf(hana))[CSRF_HEADER]
    upload = await hana.request.post(f"{service.url}/console/documents", multipart={
        "csrf_token": token, "department": "sales",
        "file": {"name": "sneaky.md", "mimeType": "text/markdown", "buffer": BEEHIVES_MD},
    }, max_redirects=0)  # fmt: skip
    assert upload.status == 403, await upload.text()
    delete = await hana.request.post(f"{service.url}/console/documents/{sales_doc}/delete",
                                     form={"csrf_token": token}, max_redirects=0)  # fmt: skip
    assert delete.status == 403, await delete.text()
    async with service.runtime.db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM documents WHERE id = $1", sales_doc) == 1

    # Eli heads nothing: no console page opens, and the web chat acts as Eli only.
    eli = await signed_in(browser, service, ELI, "/")
    await expect(eli.locator("body[data-ready]")).to_have_count(1)
    for path in ("/console", "/console/documents", "/console/alerts"):
        shown = await eli.goto(f"{service.url}{path}")
        assert shown is not None and shown.status == 403, path
        await expect(eli.locator("body")).to_contain_text("for super users and department heads")
    as_hana = await eli.request.post(f"{service.url}/webchat/api/messages",
                                     data={"user": HANA, "text": "What is my salary?"},
                                     headers=await csrf(eli))  # fmt: skip
    assert as_hana.status == 403
    refusal = (await as_hana.json())["error"]
    assert refusal == f"you are signed in as {ELI} and can act as yourself only"
    as_eli = await eli.request.post(f"{service.url}/webchat/api/messages",
                                    data={"user": ELI, "text": "Hello"},
                                    headers=await csrf(eli))  # fmt: skip
    assert as_eli.ok, await as_eli.text()
