"""Nightly episodes: one episode memory per past session, once, on any number of replicas."""

from __future__ import annotations

import asyncio
import datetime as dt

from pydantic import SecretStr

from bot.embeddings import HashEmbedder
from bot.episodes import Episodes
from bot.llm import Claude
from bot.settings import Settings
from storage import sessions
from storage.database import Database
from tests.support import TEST_DIMENSION
from tests.support.factories import add_user
from tests.support.fakes.anthropic_server import FakeAnthropic

EMBEDDER = HashEmbedder(TEST_DIMENSION)
NOW = dt.datetime(2026, 3, 10, 16, tzinfo=dt.UTC)  # 01:00 on 11 March in Tokyo
YESTERDAY, TODAY = dt.date(2026, 3, 9), dt.date(2026, 3, 10)


async def session(db: Database, user_id: int, day: dt.date, key: str, *turns: str) -> int:
    """A session with alternating user / assistant messages."""
    async with db.transaction() as conn:
        for number, text in enumerate(turns):
            found = await sessions.open_and_append(
                conn, sessions.SessionKey(1, user_id, "slack", key, day), content=text,
                role="user" if number % 2 == 0 else "assistant",
            )  # fmt: skip
    return found.session_id


async def episodes_of(db: Database) -> list[tuple[int, str, str]]:
    async with db.pool.acquire() as conn:
        rows = await conn.fetch(
            """
            SELECT user_id, content, source_ref->>'session_id' AS session FROM memories
            WHERE source_type = 'episode' ORDER BY id
            """
        )
    return [(r["user_id"], r["content"], r["session"]) for r in rows]


async def test_each_past_session_becomes_one_episode_once(db: Database) -> None:
    ana = await add_user(db, "ana@example.com", ["sales"])
    # Tokyo is already on 11 March at NOW: its 10 March session is a past day there.
    kenji = await add_user(db, "kenji@example.com", ["sales"], timezone="Asia/Tokyo")
    first = await session(db, ana, YESTERDAY, "D-ana", "Who approves discounts?", "The VP.",
                          "And above 30 percent?", "The CFO.")  # fmt: skip
    second = await session(db, ana, YESTERDAY, "C-SALES:1.2", "Where is the CRM playbook?")
    tokyo = await session(db, kenji, TODAY, "D-kenji", "What is the travel policy?")
    await session(db, ana, TODAY, "D-ana", "Still talking today")  # today: not yet
    runs = await asyncio.gather(*(Episodes(db, EMBEDDER).summarise_past_sessions(now=NOW)
                                  for _ in range(3)))  # three replicas at once  # fmt: skip
    assert sum(r.summarised for r in runs) == 3
    assert sorted(await episodes_of(db), key=lambda e: int(e[2])) == [
        (ana, "On 09 Mar 2026 in Slack, asked deskmate: “Who approves discounts?”; "
              "“And above 30 percent?”.", str(first)),
        (ana, "On 09 Mar 2026 in Slack, asked deskmate: “Where is the CRM playbook?”.",
         str(second)),
        (kenji, "On 10 Mar 2026 in Slack, asked deskmate: “What is the travel policy?”.",
         str(tokyo)),
    ]  # fmt: skip
    again = await Episodes(db, EMBEDDER).summarise_past_sessions(now=NOW)
    assert again.summarised == 0 and len(await episodes_of(db)) == 3
    async with db.pool.acquire() as conn:
        statuses = await conn.fetch("SELECT id, status FROM chat_sessions ORDER BY id")
    assert [r["status"] for r in statuses] == ["summarised", "summarised", "summarised", "active"]


async def test_claude_summarises_the_transcript(
    db: Database, settings: Settings, fake_anthropic: FakeAnthropic
) -> None:
    ana = await add_user(db, "ana@example.com", ["sales"])
    await session(db, ana, YESTERDAY, "D-ana", "Who approves discounts?", "The VP Sales.")
    fake_anthropic.default_text = "Asked who approves discounts; learned it is the VP Sales."
    claude = Claude(settings.model_copy(update={
        "anthropic_api_key": SecretStr("sk-test"), "anthropic_base_url": fake_anthropic.url,
    }))  # fmt: skip
    try:
        report = await Episodes(db, EMBEDDER, claude).summarise_past_sessions(now=NOW)
    finally:
        await claude.aclose()
    assert report.summarised == 1
    [(_, content, _)] = await episodes_of(db)
    assert content == "On 09 Mar 2026: Asked who approves discounts; learned it is the VP Sales."
    prompt = fake_anthropic.prompt_text()
    assert "User: Who approves discounts?\ndeskmate: The VP Sales." in prompt
    assert "one memory about the user" in prompt and "Date: 09 Mar 2026" in prompt
    async with db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM llm_call_metrics "
                                   "WHERE purpose = 'episode_summary'") == 1  # fmt: skip
