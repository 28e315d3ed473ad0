"""The web chat in a real browser: headless Chromium (Debian's, via Playwright's
`executable_path`; no browser download) against the service running in-process on a free port,
on a fresh database with the demo organisation.

Not collected by `make test` (the file name does not match `test_*.py`): `make e2e` runs it.
Screenshots go to the test's tmp dir; set WEBCHAT_SCREENSHOT=/abs/path.png to also save the
overview of the channel there (that is how docs/screenshot.png is made).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from playwright import async_api as playwright_api

from bot import demo
from bot.actions import Click, ClickResult
from bot.outbound import Action, Outbound, Target
from bot.runtime import Runtime
from bot.settings import Settings
from deskmate.platforms import installers
from handlers.http import create_app
from handlers.webchat.api import WEBCHAT
from handlers.webchat.hub import Room

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip
HANA = "hana.schmidt@northwind.example"
ALEX = "alex.martin@northwind.example"

# Test-only instrumentation, injected by the test (not shipped): records every event the page's
# EventSource receives, so the test can tell a streamed answer from a reloaded one.
RECORD_EVENTS = """
window.__events = [];
const Original = window.EventSource;
window.EventSource = class extends Original {
  constructor(url, options) {
    super(url, options);
    for (const name of ["ready", "post", "delta", "update"]) {
      this.addEventListener(name, (e) => window.__events.push([name, JSON.parse(e.data)]));
    }
  }
};
"""

DIGEST = Outbound(
    title="📊 Daily digest · #sales",
    text=(
        "**What people asked** (11 questions)\n"
        "- Discount approvals above 10% — 4×\n- Commission accelerators — 2×\n\n"
        "**Not found in the documents**\n- The 2027 B2B price list\n\n"
        "*Written offline from the activity data: with Claude configured it is a summary.*"
    ),
    fields=(("Questions", "11"), ("Grounded", "9 of 11"), ("👍 / 👎", "5 / 1")),
    idempotency_key="digest:sales:1",
)
ALERT = Outbound(
    title="🔴 Alert firing: negative feedback rate",
    text="Negative feedback is **24%** over the last 60 minutes (threshold 20%).",
    fields=(("Severity", "warning"), ("Rule", "feedback-watch")),
    actions=(Action("Acknowledge", "alert.ack", "instance-1", style="primary"),),
    idempotency_key="alert:1:fired",
)

HOSTILE = (
    '<img src=x onerror="window.pwned=1"> <script>window.pwned=1</script>\n'
    '[click](javascript:window.pwned=1) [safe](https://example.org/?a=1&b="2")\n'
    '> <iframe src="https://example.org"></iframe>'
)

# An answer as Claude writes them: the web chat draws it with the vendored markdown-it.
MARKDOWN = Outbound(
    title="Leave at a glance",
    text=(
        "***Read this first:*** primary carers get 16 weeks [1][2].\n\n"
        "| Plan | Days |\n|:--|--:|\n| Basic | 25 |\n| **Plus** | 30 |\n\n"
        "- Parental leave\n  - primary carer\n  - partner\n- Sabbatical\n\n"
        "See [the carer's policy](https://en.wikipedia.org/wiki/Parental_leave_(Germany)) "
        "or `[3]`.\n\n"
        '<script>window.pwned=1</script> <img src=x onerror="window.pwned=1"> '
        "![pixel](https://tracker.example/p.png)"
    ),
)


@dataclass
class Service:
    url: str
    runtime: Runtime
    app: web.Application


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[Service]:
    """`deskmate serve`'s app and platform edges, in-process so the test can post as the
    scheduler would."""
    runtime = Runtime(settings)
    await runtime.start()
    runner = None
    try:
        await demo.seed(runtime)
        app = create_app(runtime, installers(settings), host="127.0.0.1")
        runner = web.AppRunner(app, shutdown_timeout=2)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        yield Service(f"http://127.0.0.1:{port}/", runtime, app)
    finally:
        if runner is not None:
            await runner.cleanup()
        await runtime.stop()


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium")
    return CHROMIUM


@pytest.fixture
async def page(chromium: Path):  # type: ignore[no-untyped-def]
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True
        )
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        await context.add_init_script(RECORD_EVENTS)
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page
        await browser.close()
        assert errors == [], f"JavaScript errors on the page: {errors}"


async def _events(page, name: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return [data for kind, data in await page.evaluate("window.__events") if kind == name]


async def test_ask_rate_and_watch_a_channel(service: Service, page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    await page.goto(service.url)
    await expect(page.locator("body[data-ready]")).to_have_count(1)
    await expect(page.locator("#user option")).to_have_count(5)
    await page.select_option("#user", HANA)
    await expect(page.locator("#departments")).to_have_text("hr")
    await expect(page.locator("#mode")).to_have_text("offline mode")

    # Ask in the DM: the answer streams in, with its sources.
    await page.fill("#text", "How many weeks of parental leave does the primary carer get?")
    await page.press("#text", "Enter")
    answer = page.locator("article.post.bot:not(.pending)").last
    await expect(answer.locator(".text")).to_contain_text("16 weeks")
    await expect(answer.locator(".sources .label").first).to_have_text(
        "Leave Policy › Parental leave"
    )
    assert await _events(page, "delta"), "the answer did not come through the event stream"

    # 👍 is recorded.
    await answer.locator(".rate[data-rating=up]").click()
    await expect(answer.locator(".rate.chosen")).to_have_attribute("data-rating", "up")
    await expect(page.locator("#toast")).to_have_text("Thanks for the feedback!")
    async with service.runtime.db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT rating FROM answer_feedback") == 1
    await page.screenshot(path=str(tmp_path / "webchat-dm.png"))

    # Coming back the same day shows the session so far.
    await page.reload()
    await expect(page.locator("article.post")).to_have_count(2)

    # Switch to #sales as Alex; a scheduled digest and an alert arrive live.
    await page.select_option("#user", ALEX)
    await page.click(".conversation[data-channel=sales]")
    await expect(page.locator("#title")).to_have_text("#sales")
    await expect(page.locator(".empty")).to_be_visible()
    await _subscribed(service, "#sales")
    sender = service.runtime.senders.get("web")
    await sender.post(Target.parse("web:#sales"), DIGEST)
    card = page.locator("article.post.card").first
    await expect(card.locator(".card-title")).to_have_text("📊 Daily digest · #sales")
    await expect(card.locator(".field dd").first).to_have_text("11")
    assert any(p["title"] == DIGEST.title for p in await _events(page, "post"))

    # An @-mention in the channel is answered from what the channel is cleared for.
    await page.fill("#text", "@deskmate who approves a discount above 10 percent?")
    await page.press("#text", "Enter")
    reply = page.locator("article.post.bot:not(.card):not(.pending)").last
    await expect(reply.locator(".sources .dept").first).to_have_text("sales")

    # The alert's Acknowledge button dispatches a Click; the post is replaced in place.
    clicks = _fake_acknowledge(service.runtime)
    await sender.post(Target.parse("web:#sales"), ALERT)
    alert = page.locator("article.post.card", has_text="negative feedback rate")
    await expect(alert.locator("button.action")).to_have_text("Acknowledge")
    await page.screenshot(path=str(tmp_path / "webchat-channel.png"))
    await _overview(page, tmp_path / "webchat-overview.png")
    await alert.locator("button.action").click()
    await expect(page.locator(".card-title", has_text="acknowledged")).to_be_visible()
    assert [(c.kind, c.value, c.user_id) for c in clicks] == [("alert.ack", "instance-1", ALEX)]

    # HTML in a message is shown as text, never run.
    await sender.post(Target.parse("web:#sales"), Outbound(text=HOSTILE, title="<b>Hi</b>"))
    hostile = page.locator("article.post.card", has_text="<b>Hi</b>")
    await expect(hostile.locator(".text")).to_contain_text('<img src=x onerror="window.pwned=1">')
    await expect(hostile.locator("a")).to_have_count(1)  # the https link only
    assert await page.evaluate("window.pwned") is None
    assert await hostile.locator("img, script, iframe").count() == 0


async def test_answers_render_tables_lists_links_and_emphasis(service: Service, page) -> None:  # type: ignore[no-untyped-def]
    expect = playwright_api.expect
    expect.set_options(timeout=20_000)
    await page.goto(service.url)
    await expect(page.locator("body[data-ready]")).to_have_count(1)
    await page.select_option("#user", ALEX)
    await page.click(".conversation[data-channel=sales]")
    await _subscribed(service, "#sales")
    await service.runtime.senders.get("web").post(Target.parse("web:#sales"), MARKDOWN)
    text = page.locator("article.post.card", has_text="Leave at a glance").locator(".text")

    # ***bold italic*** is both, and its asterisks are gone; [1][2] are citation markers.
    await expect(text.locator("em > strong, strong > em")).to_have_text("Read this first:")
    await expect(text.locator("sup.cite")).to_have_text(["1", "2"])
    assert "*" not in await text.inner_text()

    # A table with a header row, aligned numbers and bold in a cell.
    await expect(text.locator("table thead th")).to_have_text(["Plan", "Days"])
    await expect(text.locator("table tbody tr")).to_have_count(2)
    await expect(text.locator("table tbody td.align-right")).to_have_text(["25", "30"])
    await expect(text.locator("table tbody td strong")).to_have_text("Plus")

    # The nested list is nested.
    await expect(text.locator("ul > li > ul > li")).to_have_text(["primary carer", "partner"])
    await expect(text.locator(":scope > ul > li")).to_have_count(2)

    # The link keeps the parentheses of its URL and opens safely in a new tab.
    link = text.locator("a", has_text="the carer's policy")
    wiki = "https://en.wikipedia.org/wiki/Parental_leave_(Germany)"
    await expect(link).to_have_attribute("href", wiki)
    await expect(link).to_have_attribute("target", "_blank")
    await expect(link).to_have_attribute("rel", "noopener noreferrer")
    await expect(text.locator("code")).to_have_text("[3]")  # code is code, not a citation

    # HTML in an answer is text; an image is not loaded, at most linked.
    await expect(text).to_contain_text('<script>window.pwned=1</script> <img src=x onerror="')
    assert await text.locator("script, img").count() == 0
    assert await page.evaluate("window.pwned") is None


async def _subscribed(service: Service, channel: str) -> None:
    """Wait until the page's stream listens to the channel, so the post arrives live."""
    hub = service.app[WEBCHAT].hub
    for _ in range(200):
        if hub.subscribers(Room("default", channel)):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the page never subscribed to {channel}")


def _fake_acknowledge(runtime: Runtime) -> list[Click]:
    """Stands in for the alerts module's handler until it lands."""
    clicks: list[Click] = []

    async def acknowledge(click: Click) -> ClickResult:
        clicks.append(click)
        done = Outbound(title="🟡 Alert acknowledged: negative feedback rate",
                        text=f"Acknowledged by {click.display_name}.")  # fmt: skip
        return ClickResult("You acknowledged the alert.", replace_with=done)

    runtime.actions.register("alert.ack", acknowledge)
    return clicks


async def _overview(page, path: Path) -> None:  # type: ignore[no-untyped-def]
    """The whole channel in one picture (the README's screenshot when WEBCHAT_SCREENSHOT is set)."""
    await page.set_viewport_size({"width": 1280, "height": 1400})
    await page.evaluate("document.getElementById('messages').scrollTop = 0")
    await page.screenshot(path=str(path))
    await page.set_viewport_size({"width": 1280, "height": 900})
    target = os.environ.get("WEBCHAT_SCREENSHOT")
    if target:
        shutil.copyfile(path, target)
