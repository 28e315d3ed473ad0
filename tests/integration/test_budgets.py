"""Monthly LLM budgets: what Claude's calls spend is counted per organisation and person, an
organisation or person over budget gets the documents quoted under a one-line notice instead of
an answer (Claude is not asked), and the alert metric warns at 80 %."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import pytest
from pydantic import SecretStr

from bot.alerts.evaluator import AlertEvaluator
from bot.alerts.rules import AlertRules
from bot.budgets import Budgets, Limits
from bot.conversation import ConversationService, utc_now
from bot.embeddings import HashEmbedder
from bot.llm import Claude
from bot.messages import IncomingMessage, ReplyStatus
from bot.outbound import Senders
from bot.settings import Settings
from deskmate.cli import main
from handlers.slack.sender import ChannelPacer, SlackSender, slack_client
from storage.alerts import NewRule
from storage.database import Database
from tests.support import TEST_DIMENSION
from tests.support.factories import add_document, add_user
from tests.support.fakes.anthropic_server import FakeAnthropic
from tests.support.fakes.slack_api import FakeSlack

EMBEDDER = HashEmbedder(TEST_DIMENSION)
NOTICE = "This month's AI budget is used up, so I can't write an answer"
OFFICE_HOURS = "The Lyon office is open from 08:00 to 19:00 on weekdays"
QUESTION = "When is the Lyon office open?"
NOW = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)


async def _no_sleep(_: float) -> None:
    return None


def dm(user: str, text: str = QUESTION) -> IncomingMessage:
    return IncomingMessage(
        platform="slack", user_id=user, conversation_id=f"D-{user}", text=text, is_direct=True
    )


@pytest.fixture
async def people(db: Database) -> dict[str, int]:
    await add_document(db, EMBEDDER, "general", "Employee handbook", {"Offices": OFFICE_HOURS})
    return {
        "sam": await add_user(db, "sam@example.com", ["sales"], slack_id="U-SAM"),
        "hana": await add_user(db, "hana@example.com", ["hr"], slack_id="U-HANA"),
    }


def with_claude(settings: Settings, fake: FakeAnthropic, **budgets: object) -> Settings:
    return settings.model_copy(
        update={"anthropic_api_key": SecretStr("sk-test"), "anthropic_base_url": fake.url,
                **budgets}
    )  # fmt: skip


Answering = Callable[..., ConversationService]


@pytest.fixture
async def answering(
    settings: Settings, db: Database, fake_anthropic: FakeAnthropic
) -> AsyncIterator[Answering]:
    """A conversation service with Claude, built with whatever budget settings a test gives."""
    made: list[tuple[ConversationService, Claude]] = []

    def make(clock: Callable[[], dt.datetime] = utc_now, **budgets: object) -> ConversationService:
        configured = with_claude(settings, fake_anthropic, **budgets)
        claude = Claude(configured, sleep=_no_sleep, timeout=2.0)
        service = ConversationService(configured, db, EMBEDDER, claude=claude, clock=clock)
        made.append((service, claude))
        return service

    yield make
    for service, claude in made:
        await service.tasks.join()
        await claude.aclose()


async def answer_statuses(db: Database) -> list[str]:
    async with db.pool.acquire() as conn:
        rows = await conn.fetch("SELECT answer_status FROM query_log ORDER BY id")
    return [row["answer_status"] for row in rows]


async def test_an_organisation_over_budget_gets_the_documents_with_a_notice_not_claude(
    answering: Answering, db: Database, fake_anthropic: FakeAnthropic, people: dict[str, int]
) -> None:
    service = answering(llm_monthly_budget_tokens=100)
    first = await service.handle(dm("U-SAM"))
    assert first.status is ReplyStatus.ANSWERED  # the prompt alone is more than 100 tokens
    await service.tasks.join()  # the memory extraction after it, a Claude call too
    usage = await service.budgets.usage("default")
    assert usage.tokens > 100 and usage.exhausted and usage.limits.tokens == 100
    asked = len(fake_anthropic.requests)

    for user in ("U-SAM", "U-HANA"):  # the organisation's budget stops everyone's answers
        reply = await service.handle(dm(user))
        assert reply.status is ReplyStatus.OFFLINE
        assert reply.text.startswith(f"{NOTICE}; here is what I found in the documents")
        assert len(reply.text.split("\n\n")[0].splitlines()) == 1  # a one-line notice
        assert OFFICE_HOURS in reply.text and reply.sources[0].title == "Employee handbook"
    await service.tasks.join()
    assert len(fake_anthropic.requests) == asked  # nothing reached Claude after the first answer
    assert await answer_statuses(db) == ["answered", "offline", "offline"]


async def test_a_person_over_their_own_budget_is_stopped_and_the_others_are_not(
    answering: Answering, db: Database, fake_anthropic: FakeAnthropic, people: dict[str, int]
) -> None:
    service = answering(llm_user_monthly_budget_usd=Decimal("50"))
    await service.budgets.set("default", Limits(tokens=1000), email="sam@example.com",
                              actor="test")  # fmt: skip
    assert (await service.handle(dm("U-SAM"))).status is ReplyStatus.ANSWERED  # > 1,000 tokens
    reply = await service.handle(dm("U-SAM"))
    assert reply.status is ReplyStatus.OFFLINE and reply.text.startswith(NOTICE)
    assert (await service.handle(dm("U-HANA"))).status is ReplyStatus.ANSWERED
    assert len(fake_anthropic.answer_requests) == 2

    spenders = {u.email: u for u in await service.budgets.people("default")}
    assert spenders["sam@example.com"].limits == Limits(tokens=1000)
    assert spenders["hana@example.com"].limits == Limits(usd=Decimal("50.00"))
    assert not spenders["hana@example.com"].exhausted


async def test_a_budget_set_from_the_command_line_applies_within_a_minute(
    answering: Answering, db: Database, settings: Settings, people: dict[str, int]
) -> None:
    now = [utc_now()]
    service = answering(clock=lambda: now[0])
    assert (await service.handle(dm("U-SAM"))).status is ReplyStatus.ANSWERED
    # As `deskmate budget set --tokens 1` does, from another process.
    await Budgets(db, settings).set("default", Limits(tokens=1), actor="cli:ops")
    # Without any budget an organisation is looked up once a minute, not at every answer.
    assert (await service.handle(dm("U-SAM"))).status is ReplyStatus.ANSWERED
    now[0] += dt.timedelta(seconds=61)
    reply = await service.handle(dm("U-SAM"))
    assert reply.status is ReplyStatus.OFFLINE and reply.text.startswith(NOTICE)
    async with db.pool.acquire() as conn:
        audited = await conn.fetchrow("SELECT actor, action, after FROM audit_log")
    assert dict(audited) == {
        "actor": "cli:ops",
        "action": "budget.set",
        "after": {"usd": None, "tokens": 1},
    }


async def test_spending_counts_this_utc_month_only_and_every_purpose(
    settings: Settings, db: Database, people: dict[str, int]
) -> None:
    async with db.pool.acquire() as conn:
        for at, tokens, cost, purpose in (
            (dt.datetime(2026, 10, 31, 23, 59, tzinfo=dt.UTC), 9000, "9.0", "answer"),
            (dt.datetime(2026, 11, 1, 0, 0, tzinfo=dt.UTC), 300, "1.5", "answer"),
            (dt.datetime(2026, 11, 20, 12, 0, tzinfo=dt.UTC), 200, "0.5", "digest"),
        ):
            await conn.execute(
                "INSERT INTO llm_call_metrics (tenant_id, purpose, model, status, input_tokens, "
                "cost_usd, created_at) VALUES (1, $1, 'm', 'ok', $2, $3, $4)",
                purpose, tokens, Decimal(cost), at,
            )  # fmt: skip
    budgets = Budgets(db, settings.model_copy(update={"llm_monthly_budget_usd": Decimal("4")}))
    november = await budgets.usage("default", at=NOW)
    assert (november.month, november.tokens, november.cost_usd) == (
        dt.date(2026, 11, 1),
        500,
        Decimal("2.000000"),
    )
    assert november.used_ratio == 0.5 and not november.warning
    october = await budgets.usage("default", at=dt.datetime(2026, 10, 15, tzinfo=dt.UTC))
    assert october.tokens == 9000 and october.exhausted


async def test_the_budget_metric_fires_a_rule_at_80_percent(
    settings: Settings, db: Database, fake_slack: FakeSlack
) -> None:
    senders = Senders()
    client = slack_client(settings.model_copy(update={"slack_api_url": fake_slack.url}), "xoxb")
    senders.register(SlackSender(client, ChannelPacer(0)))
    rules = AlertRules(db, senders, actor="test")
    clock = {"now": NOW}
    evaluator = AlertEvaluator(db, senders, clock=lambda: clock["now"], replica="r1")
    await rules.add("default", NewRule(
        name="AI budget", metric_type="llm_budget_used_ratio", condition="gt", threshold=0.8,
        window_minutes=15, evaluation_interval_seconds=60, for_minutes=0, severity="warning",
        notification_channels=("slack:C-OPS",), cooldown_minutes=60,
    ), now=NOW)  # fmt: skip

    async def spend(cost: str) -> None:
        async with db.pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO llm_call_metrics (tenant_id, purpose, model, status, cost_usd, "
                "created_at) VALUES (1, 'answer', 'm', 'ok', $1, $2)",
                Decimal(cost), clock["now"] - dt.timedelta(days=3),  # older than the window
            )  # fmt: skip

    async def evaluate() -> tuple[str, float | None]:
        clock["now"] += dt.timedelta(minutes=1)
        await evaluator.run_due()
        async with db.pool.acquire() as conn:
            row = await conn.fetchrow("SELECT state, last_value FROM alert_rules")
        return row["state"], row["last_value"]

    await spend("7.00")
    assert await evaluate() == ("ok", None)  # no budget at all: no data, not 0
    await Budgets(db, settings).set("default", Limits(usd=Decimal("10")), actor="test")
    assert await evaluate() == ("ok", pytest.approx(0.7))
    await spend("1.50")
    assert await evaluate() == ("firing", pytest.approx(0.85))
    posts = [c.body for c in fake_slack.called("chat.postMessage")]
    assert len(posts) == 1 and "Firing: AI budget" in posts[0]["text"]


async def test_the_settings_default_reaches_the_alert_metric(
    settings: Settings, db: Database
) -> None:
    from storage.alert_metrics import Window, builtin_metric, builtin_metrics, custom_metric

    async with db.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO llm_call_metrics (tenant_id, purpose, model, status, output_tokens, "
            "created_at) VALUES (1, 'answer', 'm', 'ok', 900, $1)", NOW,
        )  # fmt: skip
    configured = settings.model_copy(update={"llm_monthly_budget_tokens": 1000})
    await Budgets(db, configured).sync_defaults()
    window = Window("llm_budget_used_ratio", 1, NOW - dt.timedelta(minutes=5), NOW)
    async with db.pool.acquire() as conn:
        assert await builtin_metric(conn, *window) == pytest.approx(0.9)
        assert (await builtin_metrics(conn, [window]))[window] == pytest.approx(0.9)
    # A custom rule may read the budgets too, its own organisation's only.
    custom = "SELECT max(used_ratio) FROM llm_budget_usage WHERE month = date_trunc('month', $3)"
    assert await custom_metric(db, custom, 1, *window[2:]) == pytest.approx(0.9)


def test_budget_commands_set_show_and_clear(
    cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("DATABASE_URL", "DESKMATE_DATA_DIR", "EMBEDDING_PROVIDER", "EMBEDDING_DIMENSION"):
        monkeypatch.setenv(name, cli_env[name])
    monkeypatch.setenv("LLM_MONTHLY_BUDGET_TOKENS", "2000000")
    assert main(["budget", "show"]) == 0
    shown = capsys.readouterr().out
    assert "0 / 2,000,000" in shown and "0%" in shown

    assert main(["budget", "set", "--usd", "25"]) == 0
    assert "budget of default: 25.00 USD a month" in capsys.readouterr().out
    assert main(["budget", "show"]) == 0
    shown = capsys.readouterr().out
    assert "0.00 / 25.00" in shown and "2,000,000" not in shown  # the override replaces it
    assert "set with 'deskmate budget set': the organisation" in shown

    assert main(["budget", "clear"]) == 0
    assert "the default again" in capsys.readouterr().out
    assert main(["budget", "set", "--user", "nobody@example.com", "--tokens", "5"]) == 1
    assert "no user 'nobody@example.com'" in capsys.readouterr().err
    assert main(["budget", "set"]) == 2
    assert "give --usd and/or --tokens" in capsys.readouterr().err
