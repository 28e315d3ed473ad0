"""An accepted event is answered even when the replica that accepted it dies, and text the
database cannot store is cleaned before it is accepted (issue: nothing lost after the ack)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot import event_ledger
from bot.conversation import SEARCH_TEXT_CHARS
from bot.messages import IncomingMessage, ReplyStatus
from bot.runtime import Runtime
from bot.settings import Settings
from handlers.slack.interactions import SlackInteractions
from handlers.teams.interactions import TeamsInteractions
from storage.database import Database
from tests.support.factories import add_user
from tests.support.fakes.anthropic_server import FakeAnthropic
from tests.support.fakes.bot_connector import personal_message, running_connector
from tests.support.fakes.slack_api import FakeSlack
from tests.support.slack_requests import dm_event, post_event, running_slack
from tests.support.teams import quicken_streaming, running_service, with_teams

pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web.NotAppKeyWarning")


def die_after_the_ack(work: type, monkeypatch: pytest.MonkeyPatch) -> None:
    """The replica is killed right after it acknowledged: its answer never starts."""

    async def dead(*args: Any) -> None:
        return None

    monkeypatch.setattr(work, "answer", dead)


async def age_claims(db: Database) -> None:
    """Let the dead replica's lease run out."""
    async with db.pool.acquire() as conn:
        await conn.execute("UPDATE processed_events SET updated_at = now() - interval '1 hour'")


async def statuses(db: Database) -> list[tuple[str, int]]:
    async with db.pool.acquire() as conn:
        rows = await conn.fetch("SELECT status, attempts FROM processed_events ORDER BY event_id")
    return [(r["status"], r["attempts"]) for r in rows]


@pytest.fixture
async def slack(
    settings: Settings, db: Database, fake_slack: FakeSlack, fake_anthropic: FakeAnthropic
) -> AsyncIterator[tuple[Runtime, TestClient]]:
    await add_user(db, "ana@example.com", ["sales"], slack_id="U-ANA")
    async with running_slack(settings, fake_slack, fake_anthropic) as service:
        yield service.runtime, service.client


async def test_a_slack_message_acked_by_a_replica_that_died_is_answered_once_by_the_sweeper(
    slack: tuple[Runtime, TestClient],
    fake_anthropic: FakeAnthropic,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime, client = slack
    with monkeypatch.context() as dying:
        die_after_the_ack(SlackInteractions, dying)
        assert (await post_event(client, dm_event("where is the travel policy?"))).status == 200
    assert fake_anthropic.answer_requests == []
    assert await runtime.events.sweep(runtime.tasks.spawn) == 0  # its lease is still running

    await age_claims(runtime.db)
    assert await runtime.events.sweep(runtime.tasks.spawn) == 1
    await runtime.tasks.join()
    assert len(fake_anthropic.answer_requests) == 1
    assert "where is the travel policy?" in str(fake_anthropic.answer_requests[0])
    assert await statuses(runtime.db) == [("done", 2)]
    await age_claims(runtime.db)
    assert await runtime.events.sweep(runtime.tasks.spawn) == 0  # done is never answered again


async def test_an_answer_that_failed_is_retried_a_bounded_number_of_times(
    slack: tuple[Runtime, TestClient], fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, client = slack
    fake_slack.fail("chat.startStream", "internal_error", times=100)
    fake_slack.fail("chat.postMessage", "internal_error", times=100)
    await post_event(client, dm_event("hello?"))
    await runtime.tasks.join()
    monkeypatch.setattr(event_ledger, "RETRY_FAILED_AFTER_SECONDS", 0.0)
    for _ in range(event_ledger.MAX_ATTEMPTS + 2):
        await runtime.events.sweep(runtime.tasks.spawn)
        await runtime.tasks.join()
    assert await statuses(runtime.db) == [("failed", event_ledger.MAX_ATTEMPTS)]


async def test_claims_held_by_a_live_process_keep_their_lease_until_finished(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(event_ledger, "RENEW_EVERY_SECONDS", 0.05)
    ledger = event_ledger.EventLedger(db)
    for key in ("T1:D1:1.0", "T1:D1:2.0"):
        assert await ledger.claim("slack", key, payload={"text": "hi"})
    assert ledger.held == 2
    await ledger.finish("slack", "T1:D1:2.0", ok=True)
    async with db.pool.acquire() as conn:
        await conn.execute("UPDATE processed_events SET updated_at = now() - interval '1 hour'")
    await asyncio.sleep(0.3)  # a queued or long answer: the renewer keeps its lease fresh
    async with db.pool.acquire() as conn:
        fresh = dict(await conn.fetch("SELECT event_id, now() - updated_at < interval '1 minute' "
                                      "FROM processed_events"))  # fmt: skip
    assert fresh == {"T1:D1:1.0": True, "T1:D1:2.0": False}  # a finished one is left alone
    assert not await ledger.claim("slack", "T1:D1:1.0", payload={"text": "hi"})
    await ledger.close()


@pytest.mark.parametrize(
    ("sent", "stored"),
    [("nul\x00byte", "nulbyte"), ("lone \ud83d surrogate", "lone \ufffd surrogate")],
)
async def test_a_dm_the_database_could_not_store_is_cleaned_stored_and_answered(
    slack: tuple[Runtime, TestClient], fake_anthropic: FakeAnthropic, sent: str, stored: str
) -> None:
    runtime, client = slack
    assert (await post_event(client, dm_event(sent))).status == 200
    await runtime.tasks.join()
    assert len(fake_anthropic.answer_requests) == 1
    async with runtime.db.pool.acquire() as conn:
        kept = await conn.fetchval("SELECT content FROM session_messages WHERE role = 'user'")
        payload = await conn.fetchval("SELECT payload->>'text' FROM processed_events")
    assert kept == stored
    assert payload == stored
    assert await statuses(runtime.db) == [("done", 1)]


async def test_a_claim_the_database_refuses_is_not_acked_so_slack_retries(
    slack: tuple[Runtime, TestClient],
) -> None:
    runtime, client = slack
    await runtime.db.ack_pool.close()  # PostgreSQL going away as the event arrives
    response = await post_event(client, dm_event("are you there?"))
    assert response.status >= 500  # Slack redelivers anything but a 2xx
    assert await statuses(runtime.db) == []


async def test_a_megabyte_question_is_searched_by_its_beginning_and_answered(
    settings: Settings, db: Database
) -> None:
    await add_user(db, "ana@example.com", ["sales"])
    runtime = Runtime(settings)
    await runtime.start()
    try:
        text = "why does the export fail? " + "trace line ( ) & | ! <-> " * 40_000
        reply = await runtime.conversation.handle(IncomingMessage(
            platform="web", user_id="ana@example.com", conversation_id="dm", text=text,
            is_direct=True, trusted_email="ana@example.com",
        ))  # fmt: skip
    finally:
        await runtime.stop()
    assert len(text) > 900_000 > SEARCH_TEXT_CHARS
    assert reply.status is ReplyStatus.OFFLINE


async def test_a_teams_message_acked_by_a_replica_that_died_is_answered_once_by_the_sweeper(
    settings: Settings,
    fake_anthropic: FakeAnthropic,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    quicken_streaming(monkeypatch)
    async with (
        running_connector() as connector,
        running_service(with_teams(settings, fake_anthropic)) as service,
    ):
        with monkeypatch.context() as dying:
            die_after_the_ack(TeamsInteractions, dying)
            message = personal_message(connector.url, "When does Lyon open?")
            assert (await service.post(message)).status == 202
        assert connector.messages == []
        await age_claims(service.runtime.db)
        assert await service.runtime.events.sweep(service.runtime.tasks.spawn) == 1
        await service.settle()
        assert len(connector.messages) == 1
        assert await statuses(service.runtime.db) == [("done", 2)]


async def test_claims_arriving_together_are_written_together_and_each_key_is_owned_once(
    db: Database,
) -> None:
    ledger = event_ledger.EventLedger(db)
    keys = [f"T1:D{n % 50}:1.0" for n in range(200)]  # each key four times, all at once
    owned = await asyncio.gather(*(ledger.claim("slack", key, payload={"n": 1}) for key in keys))
    assert sum(owned) == 50
    assert {key for key, mine in zip(keys, owned, strict=True) if mine} == set(keys)
    async with db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM processed_events") == 50
        assert await conn.fetchval("SELECT sum(attempts) FROM processed_events") == 50
    await ledger.close()
