"""The admin console in a real browser: headless Chromium (Debian's, via Playwright's
`executable_path`) against the service in-process on loopback, with the demo organisation, so
the console opens as its super user (Robin Admin).

Not collected by `make test` (the file name does not match `test_*.py`); run it with
`.venv/bin/python -m pytest tests/e2e/console_browser.py`. Screenshots go to the test's tmp
dir; set CONSOLE_SCREENSHOTS=/abs/dir to also save them there (that is how
docs/console-*.png are made).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright import async_api as playwright_api
from playwright.async_api import FilePayload

from bot import demo
from bot.messages import IncomingMessage
from bot.runtime import Runtime
from bot.settings import Settings
from deskmate.platforms import installers
from handlers.http import create_app
from tests.e2e.webchat_browser import CHROMIUM, CHROMIUM_ARGS, HANA

ELI = "eli.novak@northwind.example"
TRAVEL_MD = b"""# Travel policy
## Flights
Book economy class for flights under six hours through the travel portal.
"""


async def ask(runtime: Runtime, email: str, text: str) -> None:
    await runtime.conversation.handle(IncomingMessage(
        platform="web", user_id=email, conversation_id=f"dm:{email}", text=text, is_direct=True,
        email=email, trusted_email=email,
    ))  # fmt: skip


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[tuple[str, Runtime]]:
    runtime = Runtime(settings)
    await runtime.start()
    runner = None
    try:
        await demo.seed(runtime)
        await ask(runtime, HANA, "How many weeks of parental leave does the primary carer get?")
        async with runtime.db.pool.acquire() as conn:
            # Questions retrieval found nothing for (the test embedder matches loosely, so they
            # are recorded as the conversation service records them).
            await conn.execute("""
                INSERT INTO query_log (tenant_id, user_id, platform, query_text, answer_status,
                                       created_at)
                SELECT 1, u.id, 'web', q, 'no_context', now() - make_interval(hours => n::int)
                FROM users u, unnest($2::text[]) WITH ORDINALITY AS t(q, n)
                WHERE u.email = $1
            """, ELI, ["Where can I park my bicycle?", "Is there bicycle parking at the office?",
                       "Who pays for the gym membership?"])  # fmt: skip
            await conn.execute("""
                INSERT INTO llm_call_metrics (tenant_id, purpose, model, status, input_tokens,
                                              output_tokens, cost_usd, created_at)
                SELECT 1, 'answer', 'claude-sonnet', 'ok', 9000 + d * 700, 1500 + d * 90,
                       0.04 + d * 0.006, now() - make_interval(days => d)
                FROM generate_series(0, 13) AS d
            """)  # fmt: skip
        app = create_app(runtime, installers(settings), host="127.0.0.1")
        runner = web.AppRunner(app, shutdown_timeout=2)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", runtime
    finally:
        if runner is not None:
            await runner.cleanup()
        await runtime.stop()


@pytest.fixture
async def page() -> AsyncIterator[playwright_api.Page]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium")
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        yield await context.new_page()
        await browser.close()


async def shot(page: playwright_api.Page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"console-{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    if target := os.environ.get("CONSOLE_SCREENSHOTS"):
        shutil.copy(path, Path(target) / path.name)


async def test_the_console_pages_in_a_browser(
    service: tuple[str, Runtime], page: playwright_api.Page, tmp_path: Path
) -> None:
    url, _ = service
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    await page.goto(f"{url}/console")
    await expect(page.locator("header .who")).to_have_text(
        "robin.admin@northwind.example (super user)"
    )
    await expect(page.locator("figure svg")).to_have_count(4)
    await shot(page, tmp_path, "overview")

    await page.click("text=Unanswered")
    await expect(page.locator("h2").first).to_contain_text("bicycle")
    await shot(page, tmp_path, "unanswered")

    await page.click("header >> text=Documents")
    await page.select_option("select[name=department]", "hr")
    travel = FilePayload(name="travel.md", mimeType="text/markdown", buffer=TRAVEL_MD)
    await page.set_input_files("input[type=file]", files=[travel])
    await page.click("form[action='/console/documents'] button")
    # The demo has a "Travel Policy" of its own (general); the upload is the hr one.
    rows = page.locator("tr", has=page.locator("td a", has_text="Travel policy"))
    uploaded = rows.filter(has=page.locator("td", has_text=re.compile(r"^\s*hr\s*$")))
    await expect(uploaded).to_have_count(1)
    await shot(page, tmp_path, "documents")

    for section, name in (("Schedules", "schedules"), ("Alerts", "alerts"),
                          ("People", "people"), ("Audit log", "audit")):  # fmt: skip
        await page.click(f"header >> text={section}")
        await expect(page.locator("h1")).to_be_visible()
        await shot(page, tmp_path, name)
    await expect(page.locator("td", has_text="document.ingest")).not_to_have_count(0)
