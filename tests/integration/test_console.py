"""The admin console on the real app, the embedded PostgreSQL and sessions signed in through a
local fake OpenID Connect provider. What the people who run deskmate see: the overview drawn
as SVG charts, a document uploaded, cited by an answer and deleted, the questions no document
could answer, and the doors that stay shut (another department, a member, a forged POST)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient, TestServer

from bot.console import group_by_theme
from bot.messages import IncomingMessage, ReplyStatus
from bot.runtime import Runtime
from bot.settings import Settings
from handlers import console, webchat
from handlers.http import RUNTIME, create_app
from storage.console import Unanswered
from storage.database import Database
from tests.integration.test_signin import Site, _with_signin, running
from tests.support.factories import add_user, clear_channel
from tests.support.fakes.oidc_provider import FakeOidc

ROOT = "root@northwind.example"  # super user
HANA = "hana.schmidt@northwind.example"  # reads and heads hr
SAM = "sam.lee@northwind.example"  # reads and heads sales
ALEX = "alex.martin@northwind.example"  # reads sales, heads nothing

LEAVE_MD = b"""# Parental leave
Parents take sixteen weeks of parental leave on full pay.
"""
PRICING_MD = b"""# Discounts
Sales may grant at most twelve percent discount without approval.
"""


async def make_head(db: Database, email: str, department: str) -> None:
    async with db.pool.acquire() as conn:
        await conn.execute("UPDATE users SET dept_head_for = $2 WHERE email = $1", email,
                           [department])  # fmt: skip


@pytest.fixture
async def site(settings: Settings, db: Database) -> AsyncIterator[Site]:
    """deskmate off loopback with sign-in, the web chat and the console installed."""
    await add_user(db, ROOT, ["hr", "sales"], super_user=True)
    await add_user(db, HANA, ["hr"], slack_id="U-HANA")
    await add_user(db, SAM, ["sales"])
    await add_user(db, ALEX, ["sales"], slack_id="U-ALEX")
    await make_head(db, HANA, "hr")
    await make_head(db, SAM, "sales")
    await clear_channel(db, "web", "#sales", "sales")
    async with running(FakeOidc()) as slack, running(FakeOidc(client_id="entra")) as entra:
        runtime = Runtime(_with_signin(settings, slack, entra))
        await runtime.start()
        app = create_app(runtime, [webchat.install, console.install], host="0.0.0.0")
        server = TestServer(app)
        await server.start_server()
        jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[server.make_url("/")])
        try:
            async with (
                TestClient(server, cookie_jar=jar) as client,
                aiohttp.ClientSession() as outside,
            ):
                yield Site(client, db, slack, entra, outside)
        finally:
            await runtime.stop()


async def signed_in(site: Site, email: str) -> Site:
    answer = await site.sign_in(email)
    assert answer.status == 303, await answer.text()
    return site


def csrf_field(site: Site) -> dict[str, str]:
    return {"csrf_token": site.cookie("deskmate_csrf") or ""}


async def upload(site: Site, department: str, name: str, data: bytes, *, token: bool = True
                 ) -> aiohttp.ClientResponse:  # fmt: skip
    form = FormData()
    if token:
        form.add_field("csrf_token", site.cookie("deskmate_csrf") or "")
    form.add_field("department", department)
    form.add_field("file", data, filename=name, content_type="text/markdown")
    return await site.client.post("/console/documents", data=form, allow_redirects=False)


async def document_id(db: Database, title: str) -> int:
    async with db.pool.acquire() as conn:
        return int(await conn.fetchval("SELECT id FROM documents WHERE title = $1", title))


async def ask(site: Site, slack_id: str, text: str, *, channel: str | None = None
              ) -> tuple[ReplyStatus, set[int]]:  # fmt: skip
    """A question in a Slack DM (or `channel`), answered offline: its status and the documents
    it cites."""
    _, status, cited = await ask_for_excerpts(site, slack_id, text, channel=channel)
    return status, cited


async def ask_for_excerpts(site: Site, slack_id: str, text: str, *, channel: str | None = None
                           ) -> tuple[str, ReplyStatus, set[int]]:  # fmt: skip
    """As `ask`, with the excerpts of the passages the answer quotes."""
    runtime = site.client.app[RUNTIME]
    reply = await runtime.conversation.handle(IncomingMessage(
        platform="slack", user_id=slack_id, conversation_id=channel or f"D-{slack_id}",
        text=text, is_direct=channel is None,
    ))  # fmt: skip
    excerpts = " ".join(s.excerpt for s in reply.sources)
    return excerpts, reply.status, {s.document_id for s in reply.sources}


async def clearances(db: Database) -> set[tuple[str, str, str]]:
    async with db.pool.acquire() as conn:
        rows = await conn.fetch("SELECT platform, channel_id, department FROM channel_clearances")
    return {(r["platform"], r["channel_id"], r["department"]) for r in rows}


async def post_clearance(
    site: Site, platform: str, channel: str, department: str, *, remove: bool = False,
    token: bool = True,
) -> aiohttp.ClientResponse:  # fmt: skip
    data = {"platform": platform, "channel_id": channel, "department": department}
    if token:
        data |= csrf_field(site)
    path = "/console/clearances/remove" if remove else "/console/clearances"
    return await site.client.post(path, data=data, allow_redirects=False)


async def replace(site: Site, document: int, name: str, data: bytes, *, token: bool = True
                  ) -> aiohttp.ClientResponse:  # fmt: skip
    form = FormData()
    if token:
        form.add_field("csrf_token", site.cookie("deskmate_csrf") or "")
    form.add_field("file", data, filename=name, content_type="text/markdown")
    return await site.client.post(f"/console/documents/{document}/replace", data=form,
                                  allow_redirects=False)  # fmt: skip


# --- what a super user sees ----------------------------------------------------------------------


async def test_a_super_user_sees_the_overview_drawn_as_svg_charts(site: Site) -> None:
    async with site.db.pool.acquire() as conn:
        await conn.execute("""
            INSERT INTO query_log (tenant_id, user_id, platform, query_text, answer_status,
                                   grounded)
            SELECT 1, u.id, 'slack', q, s, g FROM users u,
                   (VALUES ('leave?', 'answered', true), ('parking?', 'no_context', false),
                           ('boom', 'error', false)) AS t(q, s, g)
            WHERE u.email = 'hana.schmidt@northwind.example'
        """)  # fmt: skip
        await conn.execute(
            "INSERT INTO llm_call_metrics (tenant_id, purpose, model, status, input_tokens, "
            "output_tokens, cost_usd) VALUES (1, 'answer', 'claude', 'ok', 1200, 300, 0.0125)"
        )
    await signed_in(site, ROOT)
    shown = await site.client.get("/console")
    text = await shown.text()
    assert shown.status == 200, text
    assert "script-src" not in shown.headers["Content-Security-Policy"]  # no script at all
    assert "default-src 'none'" in shown.headers["Content-Security-Policy"]
    assert text.count("<svg") == 4
    for caption in ("Questions per day", "Feedback per day", "LLM tokens per day",
                    "LLM cost per day (USD)"):  # fmt: skip
        assert f"<figcaption>{caption}</figcaption>" in text
    for legend in ("answered: 1", "unanswered: 1", "failed: 1", "tokens: 1,500", "USD: 0.0125"):
        assert legend in text, legend
    assert "LLM budget this month: 1500 tokens" in text  # the organisation's month so far
    # Narrowed to a platform nobody used, the same charts are empty.
    teams = await (await site.client.get("/console", params={"platform": "teams"})).text()
    assert "answered: 0" in teams and "tokens: 0" in teams


async def test_an_uploaded_document_is_cited_and_once_deleted_no_longer_found(
    site: Site,
) -> None:
    await signed_in(site, HANA)
    uploaded = await upload(site, "hr", "parental-leave.md", LEAVE_MD)
    assert uploaded.status == 303, await uploaded.text()
    listing = await (await site.client.get("/console/documents")).text()
    leave = await document_id(site.db, "Parental leave")
    assert f'<a href="/console/documents/{leave}">Parental leave</a>' in listing
    assert "<td>hr</td><td>ready</td><td>1</td>" in listing

    status, cited = await ask(site, "U-HANA", "How many weeks of parental leave do parents get?")
    assert status is ReplyStatus.OFFLINE and leave in cited
    page = await (await site.client.get(f"/console/documents/{leave}")).text()
    assert "How many weeks of parental leave do parents get?" in page and HANA in page

    deleted = await site.client.post(f"/console/documents/{leave}/delete",
                                     data=csrf_field(site), allow_redirects=False)  # fmt: skip
    assert deleted.status == 303
    _, cited_after = await ask(site, "U-HANA", "How many weeks of parental leave do parents get?")
    assert leave not in cited_after
    assert "No documents yet." in await (await site.client.get("/console/documents")).text()
    audit = await signed_in(site, ROOT)
    log = await (await audit.client.get("/console/audit", params={"action": "document."})).text()
    assert "document.delete" in log and HANA in log


async def test_an_unanswered_question_is_listed_with_who_asked(site: Site) -> None:
    status, cited = await ask(site, "U-ALEX", "Where can I park my bicycle at the office?")
    assert status is ReplyStatus.OFFLINE and not cited  # no passage to quote
    await signed_in(site, SAM)  # the head of sales sees what sales people could not get
    text = await (await site.client.get("/console/unanswered")).text()
    assert "Where can I park my bicycle at the office?" in text
    assert ALEX in text
    await signed_in(site, HANA)  # the head of hr does not see a sales person's questions
    assert "bicycle" not in await (await site.client.get("/console/unanswered")).text()


def test_unanswered_questions_are_grouped_by_a_word_they_share() -> None:
    import datetime as dt

    at = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    asked = [Unanswered(n, at, "slack", q, None, None) for n, q in enumerate([
        "Where do I park my bicycle?", "Is bicycle parking covered?", "Who pays for parking?",
        "What is the wifi password?",
    ])]  # fmt: skip
    themes = [(t.word, [q.question for q in t.questions]) for t in group_by_theme(asked)]
    assert themes == [
        ("bicycle", ["Where do I park my bicycle?", "Is bicycle parking covered?"]),
        ("parking", ["Who pays for parking?"]),
        (None, ["What is the wifi password?"]),
    ]


# --- the doors that stay shut ------------------------------------------------------------------


async def test_a_department_head_cannot_touch_another_department(site: Site) -> None:
    await signed_in(site, SAM)
    assert (await upload(site, "sales", "pricing.md", PRICING_MD)).status == 303
    pricing = await document_id(site.db, "Discounts")
    await signed_in(site, HANA)
    refused = await upload(site, "sales", "sneaky.md", LEAVE_MD)
    assert refused.status == 403
    assert "only a super user or the head of sales may upload documents" in await refused.text()
    delete = await site.client.post(f"/console/documents/{pricing}/delete",
                                    data=csrf_field(site), allow_redirects=False)  # fmt: skip
    assert delete.status == 403
    assert (await site.client.get(f"/console/documents/{pricing}")).status == 403
    assert (await site.client.get("/console", params={"department": "sales"})).status == 403
    assert (await site.client.get("/console/audit")).status == 403
    assert (await site.client.get("/console/alerts")).status == 403
    assert "Discounts" not in await (await site.client.get("/console/documents")).text()
    people = await (await site.client.get("/console/people")).text()
    assert HANA in people and ALEX not in people
    assert await document_id(site.db, "Discounts") == pricing  # still there


async def test_someone_who_manages_nothing_gets_403_everywhere(site: Site) -> None:
    await signed_in(site, ALEX)
    for path in ("/console", "/console/unanswered", "/console/documents", "/console/people",
                 "/console/schedules"):  # fmt: skip
        shown = await site.client.get(path)
        assert shown.status == 403, path
        assert "for super users and department heads" in await shown.text()
    assert (await upload(site, "sales", "mine.md", PRICING_MD)).status == 403


async def test_a_visitor_is_sent_to_sign_in(site: Site) -> None:
    visit = await site.client.get("/console/documents", allow_redirects=False)
    assert visit.status == 303
    assert visit.headers["Location"] == "/signin?next=/console/documents"


async def test_every_post_needs_the_csrf_token(site: Site) -> None:
    await signed_in(site, ROOT)
    assert (await upload(site, "hr", "leave.md", LEAVE_MD)).status == 303
    leave = await document_id(site.db, "Parental leave")
    assert (await upload(site, "hr", "other.md", PRICING_MD, token=False)).status == 403
    for path in (f"/console/documents/{leave}/delete", "/console/schedules/1/pause",
                 "/console/schedules/1/run", "/console/alerts/1/ack",
                 "/console/alerts/rules/any/pause"):  # fmt: skip
        for data in ({}, {"csrf_token": "forged"}):
            refused = await site.client.post(path, data=data, allow_redirects=False)
            assert refused.status == 403, path
            assert "CSRF" in await refused.text()
    assert await document_id(site.db, "Parental leave") == leave
    # The same token as a header (for scripts) is accepted.
    deleted = await site.client.post(f"/console/documents/{leave}/delete", allow_redirects=False,
                                     headers=site.csrf())  # fmt: skip
    assert deleted.status == 303


async def test_an_alert_is_acknowledged_from_the_console(site: Site) -> None:
    async with site.db.pool.acquire() as conn:
        rule = await conn.fetchval(
            "INSERT INTO alert_rules (tenant_id, name, metric_type, condition, threshold) "
            "VALUES (1, 'errors', 'llm_error_rate', 'gt', 0.1) RETURNING id"
        )
        episode = await conn.fetchval(
            "INSERT INTO alert_instances (tenant_id, rule_id, state, started_at, threshold, "
            "message) VALUES (1, $1, 'firing', now(), 0.1, 'Errors above 10 %') RETURNING id",
            rule,
        )
    await signed_in(site, ROOT)
    page = await (await site.client.get("/console/alerts")).text()
    assert "Errors above 10 %" in page and f'action="/console/alerts/{episode}/ack"' in page
    acked = await site.client.post(f"/console/alerts/{episode}/ack", data=csrf_field(site),
                                   allow_redirects=False)  # fmt: skip
    assert acked.status == 303
    assert f"<td>{ROOT}</td>" in await (await site.client.get("/console/alerts")).text()


# --- the loopback demo ---------------------------------------------------------------------------


async def test_on_loopback_the_console_opens_as_the_first_super_user(
    settings: Settings, db: Database
) -> None:
    await add_user(db, ALEX, ["sales"])
    await add_user(db, ROOT, ["hr"], super_user=True)
    runtime = Runtime(settings)
    await runtime.start()
    try:
        app: web.Application = create_app(runtime, [webchat.install, console.install])
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            shown = await client.get("/console/documents")
            text = await shown.text()
            assert shown.status == 200 and f"{ROOT} (super user)" in text
            token = re.search(r'name="csrf_token" value="([^"]+)"', text)
            assert token is not None
            assert (await client.post("/console/alerts/1/ack")).status == 403
            rebound = await client.get("/console", headers={"Host": "evil.example"})
            assert rebound.status == 403
    finally:
        await runtime.stop()


async def test_schedules_are_paused_resumed_and_run_by_whoever_may(site: Site) -> None:
    async with site.db.pool.acquire() as conn:
        standup = await conn.fetchval(
            "INSERT INTO scheduled_messages (tenant_id, platform, channel, kind, payload, cron, "
            "next_run_at, created_by) VALUES (1, 'web', '#sales', 'text', $1, '0 9 * * 1-5', "
            "now() + interval '1 day', $2) RETURNING id",
            {"text": "Stand-up in five minutes"}, ROOT,
        )  # fmt: skip
    await signed_in(site, SAM)  # a department head sees and changes only their own schedules
    assert "Stand-up" not in await (await site.client.get("/console/schedules")).text()
    refused = await site.client.post(f"/console/schedules/{standup}/pause",
                                     data=csrf_field(site), allow_redirects=False)  # fmt: skip
    assert refused.status == 400 and f"belongs to {ROOT}" in await refused.text()
    await signed_in(site, ROOT)
    page = await (await site.client.get("/console/schedules")).text()
    assert "Stand-up in five minutes" in page and "<td>active</td>" in page
    for action, status in (("pause", "paused"), ("run", "paused"), ("resume", "active")):
        done = await site.client.post(f"/console/schedules/{standup}/{action}",
                                      data=csrf_field(site), allow_redirects=False)  # fmt: skip
        assert done.status == 303, await done.text()
        assert f"<td>{status}</td>" in await (await site.client.get("/console/schedules")).text()
    log = await (await site.client.get("/console/audit", params={"actor": "root@"})).text()
    for action in ("schedule.pause", "schedule.run_now", "schedule.resume"):
        assert action in log


# --- clearances and replacing a document -------------------------------------------------------

LEAVE_QUESTION = "How many weeks of parental leave do parents get?"


async def test_a_super_user_clears_a_channel_and_withdraws_it_again(site: Site) -> None:
    await signed_in(site, ROOT)
    assert (await upload(site, "hr", "parental-leave.md", LEAVE_MD)).status == 303
    leave = await document_id(site.db, "Parental leave")
    # Not cleared: in the channel, hr's document is not quoted even to a reader of hr.
    _, cited = await ask(site, "U-HANA", LEAVE_QUESTION, channel="C-PEOPLE")
    assert leave not in cited

    added = await post_clearance(site, "slack", "C-PEOPLE", "hr")
    assert added.status == 303 and added.headers["Location"] == "/console/people"
    assert ("slack", "C-PEOPLE", "hr") in await clearances(site.db)
    people = await (await site.client.get("/console/people")).text()
    assert (
        "<td>C-PEOPLE</td><td>hr</td>" in people and 'action="/console/clearances/remove"' in people
    )
    _, cited = await ask(site, "U-HANA", LEAVE_QUESTION, channel="C-PEOPLE")
    assert leave in cited

    removed = await post_clearance(site, "slack", "C-PEOPLE", "hr", remove=True)
    assert removed.status == 303
    assert ("slack", "C-PEOPLE", "hr") not in await clearances(site.db)
    _, cited = await ask(site, "U-HANA", LEAVE_QUESTION, channel="C-PEOPLE")
    assert leave not in cited
    again = await post_clearance(site, "slack", "C-PEOPLE", "hr", remove=True)
    assert again.status == 404  # nothing left to withdraw

    log = await (await site.client.get("/console/audit", params={"action": "channel."})).text()
    assert "channel.clear" in log and "channel.unclear" in log and "slack:C-PEOPLE" in log


async def test_a_department_head_clears_channels_of_their_own_department_only(
    site: Site,
) -> None:
    await signed_in(site, HANA)
    before = await clearances(site.db)
    refused = await post_clearance(site, "slack", "C-DEALS", "sales")
    assert refused.status == 403
    assert "head of sales may change its channel clearances" in await refused.text()
    withdraw = await post_clearance(site, "web", "#sales", "sales", remove=True)
    assert withdraw.status == 403
    assert await clearances(site.db) == before  # nothing stored, nothing withdrawn

    assert (await post_clearance(site, "teams", "19:hr@thread", "hr")).status == 303
    assert ("teams", "19:hr@thread", "hr") in await clearances(site.db)
    people = await (await site.client.get("/console/people")).text()
    assert "19:hr@thread" in people and "#sales" not in people  # only hr's clearances shown
    bad = await post_clearance(site, "fax", "C-1", "hr")
    assert bad.status == 400


async def test_clearance_and_replace_posts_need_the_csrf_token(site: Site) -> None:
    await signed_in(site, ROOT)
    assert (await upload(site, "hr", "parental-leave.md", LEAVE_MD)).status == 303
    leave = await document_id(site.db, "Parental leave")
    before = await clearances(site.db)
    for response in (
        await post_clearance(site, "slack", "C-PEOPLE", "hr", token=False),
        await post_clearance(site, "web", "#sales", "sales", remove=True, token=False),
        await replace(site, leave, "parental-leave.md", PRICING_MD, token=False),
    ):
        assert response.status == 403
        assert "CSRF" in await response.text()
    assert await clearances(site.db) == before
    async with site.db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT title FROM documents WHERE id = $1", leave) == (
            "Parental leave"
        )


async def test_a_replaced_document_keeps_its_id_and_answers_from_the_new_text(
    site: Site,
) -> None:
    await signed_in(site, SAM)
    assert (await upload(site, "sales", "pricing.md", PRICING_MD)).status == 303
    pricing = await document_id(site.db, "Discounts")
    page = await (await site.client.get(f"/console/documents/{pricing}")).text()
    assert f'action="/console/documents/{pricing}/replace"' in page
    assert 'enctype="multipart/form-data"' in page

    await signed_in(site, HANA)  # the head of hr may not replace a sales document
    refused = await replace(site, pricing, "pricing.md", b"# Discounts\nAnything goes.\n")
    assert refused.status == 403

    await signed_in(site, SAM)
    unsupported = await replace(site, pricing, "pricing.exe", b"MZ")
    assert unsupported.status == 400
    new = b"""# Discounts
Sales may grant at most eighteen percent discount without approval from finance.
"""
    replaced = await replace(site, pricing, "pricing-2026.md", new)
    assert replaced.status == 303, await replaced.text()
    assert replaced.headers["Location"] == f"/console/documents/{pricing}"
    assert await document_id(site.db, "Discounts") == pricing  # the same document

    excerpts, _, cited = await ask_for_excerpts(
        site, "U-ALEX", "What discount may sales grant without approval?"
    )
    assert pricing in cited
    assert "eighteen percent" in excerpts and "twelve percent" not in excerpts
    async with site.db.pool.acquire() as conn:
        texts = await conn.fetch("SELECT content FROM document_chunks WHERE document_id = $1",
                                 pricing)  # fmt: skip
    assert texts and all("twelve" not in t["content"] for t in texts)
