"""Memories on the database: remember, list and forget, and extraction that keeps one current
memory per fact."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from bot.conversation import ConversationService
from bot.embeddings import HashEmbedder
from bot.llm import Claude
from bot.messages import IncomingMessage, ReplyStatus
from bot.settings import Settings
from storage.database import Database
from tests.support import TEST_DIMENSION
from tests.support.factories import add_user
from tests.support.fakes.anthropic_server import FakeAnthropic, Text, Tool

EMBEDDER = HashEmbedder(TEST_DIMENSION)


def dm(text: str, user: str = "U-ANA") -> IncomingMessage:
    return IncomingMessage(
        platform="slack", user_id=user, conversation_id=f"D-{user}", text=text, is_direct=True
    )


@pytest.fixture
async def offline(settings: Settings, db: Database) -> ConversationService:
    await add_user(db, "ana@example.com", ["sales"], slack_id="U-ANA")
    await add_user(db, "bo@example.com", ["sales"], slack_id="U-BO")
    return ConversationService(settings, db, EMBEDDER)


async def _active(db: Database, email: str = "ana@example.com") -> list[str]:
    async with db.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT m.content FROM memories m JOIN users u ON u.id = m.user_id "
            "WHERE u.email = $1 AND m.is_active ORDER BY m.id",
            email,
        )
    return [r["content"] for r in rows]


async def test_remember_list_and_forget(offline: ConversationService, db: Database) -> None:
    saved = await offline.handle(dm("remember that I manage the Berlin warehouse"))
    assert saved.status is ReplyStatus.COMMAND and saved.ephemeral
    assert saved.text.startswith("Got it — I'll remember: “I manage the Berlin warehouse” (#")
    await offline.handle(dm("remember I prefer answers in French"))
    listing = await offline.handle(dm("memories"))
    assert "• I manage the Berlin warehouse (#" in listing.text
    assert "• I prefer answers in French (#" in listing.text

    forgotten = await offline.handle(dm("forget berlin"))
    assert forgotten.text.startswith("Forgotten:\n• I manage the Berlin warehouse")
    assert await _active(db) == ["I prefer answers in French"]
    missing = await offline.handle(dm("forget the moon landing"))
    assert missing.text.startswith("I couldn't find a memory matching “the moon landing”")


async def test_forget_by_id_only_touches_your_own_memories(
    offline: ConversationService, db: Database
) -> None:
    mine = await offline.handle(dm("remember my desk is on floor 3"))
    theirs = await offline.handle(dm("remember my desk is on floor 5", user="U-BO"))
    their_id = theirs.text.rsplit("#", 1)[1].rstrip(").")
    refused = await offline.handle(dm(f"forget #{their_id}"))
    assert refused.text.startswith("I couldn't find a memory")
    assert await _active(db, "bo@example.com") == ["my desk is on floor 5"]
    my_id = mine.text.rsplit("#", 1)[1].rstrip(").")
    done = await offline.handle(dm(f"forget #{my_id}"))
    assert done.text == "Forgotten:\n• my desk is on floor 3 (#" + my_id + ")"


async def test_remembering_the_same_fact_twice_keeps_one(
    offline: ConversationService, db: Database
) -> None:
    await offline.handle(dm("remember I manage the Berlin warehouse"))
    again = await offline.handle(dm("remember I manage the Berlin warehouse."))
    assert again.text.startswith("Updated — I'll remember")
    assert await _active(db) == ["I manage the Berlin warehouse"]


async def test_offline_mode_does_not_extract_memories_from_conversation(
    offline: ConversationService, db: Database
) -> None:
    await offline.handle(dm("I manage the Berlin warehouse, by the way. What is the VPN?"))
    await offline.tasks.join()
    assert await _active(db) == []


async def test_extraction_adds_then_updates_a_changed_fact(
    settings: Settings, db: Database, fake_anthropic: FakeAnthropic
) -> None:
    await add_user(db, "ana@example.com", ["sales"], slack_id="U-ANA")
    claude_settings = settings.model_copy(
        update={
            "anthropic_api_key": SecretStr("sk-test"),
            "anthropic_base_url": fake_anthropic.url,
        }
    )
    claude = Claude(claude_settings)
    service = ConversationService(claude_settings, db, EMBEDDER, claude=claude)
    fake_anthropic.script += [
        Text("Noted, Berlin it is."),
        Tool(
            {
                "operations": [
                    {
                        "action": "ADD",
                        "content": "Manages the Berlin warehouse",
                        "importance": 0.8,
                        "tags": ["role"],
                    }
                ]
            }
        ),
    ]
    await service.handle(dm("I manage the Berlin warehouse now."))
    await service.tasks.join()
    assert await _active(db) == ["Manages the Berlin warehouse"]
    async with db.pool.acquire() as conn:
        memory_id = await conn.fetchval("SELECT id FROM memories")

    fake_anthropic.script += [
        Text("Congratulations on the move."),
        Tool(
            {
                "operations": [
                    {
                        "action": "UPDATE",
                        "memory_id": memory_id,
                        "content": "Manages the Rotterdam warehouse (moved from Berlin)",
                    },
                    {"action": "DELETE", "memory_id": 999999},
                ]
            }
        ),
    ]
    await service.handle(
        dm("I moved: I now manage the Berlin warehouse's sister site in Rotterdam.")
    )
    await service.tasks.join()
    await claude.aclose()

    assert await _active(db) == ["Manages the Rotterdam warehouse (moved from Berlin)"]
    extraction = fake_anthropic.requests[-1]
    assert extraction["tool_choice"] == {"type": "tool", "name": "update_memories"}
    prompt = extraction["messages"][0]["content"]
    assert f"id {memory_id}: Manages the Berlin warehouse" in prompt  # compared with the closest
    async with db.pool.acquire() as conn:
        calls = await conn.fetchval(
            "SELECT count(*) FROM llm_call_metrics WHERE purpose = 'memory_extraction'"
        )
    assert calls == 2


async def test_memories_are_not_extracted_from_channel_messages(
    settings: Settings, db: Database, fake_anthropic: FakeAnthropic
) -> None:
    await add_user(db, "ana@example.com", ["sales"], slack_id="U-ANA")
    claude_settings = settings.model_copy(
        update={
            "anthropic_api_key": SecretStr("sk-test"),
            "anthropic_base_url": fake_anthropic.url,
        }
    )
    claude = Claude(claude_settings)
    service = ConversationService(claude_settings, db, EMBEDDER, claude=claude)
    message = IncomingMessage(
        platform="slack",
        user_id="U-ANA",
        conversation_id="C1",
        text="I manage the Berlin warehouse",
        is_direct=False,
    )
    await service.handle(message)
    await service.tasks.join()
    await claude.aclose()
    assert [r.get("tool_choice") for r in fake_anthropic.requests] == [None]
