"""Two replicas on one database, as behind a load balancer: what is posted and answered on one
reaches the pages connected to the other, in order and once, and still does after the other's
listening connection to PostgreSQL was cut."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bot import demo
from bot.outbound import Outbound, Target
from bot.runtime import Runtime
from bot.settings import Settings
from handlers.http import RUNTIME, create_app
from handlers.webchat import install
from handlers.webchat.api import WEBCHAT
from handlers.webchat.relay import Relay
from storage import notify
from storage.database import Pooler
from storage.errors import DatabaseUnavailable
from tests.support.webchat import ALEX, ELI, HANA, Events, ask, listen

DEPLOY = "How do we roll back a deploy?"
LEAVE = "How many weeks of parental leave does a primary carer get?"


def _direct_url(pg_server: Any, settings: Settings) -> str:
    """This test's database reached without any pooler in between (the test run may put
    PgBouncer in front of DATABASE_URL; a LISTEN needs PostgreSQL itself)."""
    assert settings.database_url is not None
    name = settings.database_url.get_secret_value().partition("?")[0].rsplit("/", 1)[1]
    server, _, query = pg_server.get_uri().partition("?")
    return f"{server.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


@pytest.fixture
def direct_url(pg_server: Any, settings: Settings) -> str:
    return _direct_url(pg_server, settings)


@pytest.fixture
async def replicas(
    settings: Settings, direct_url: str
) -> AsyncIterator[tuple[TestClient, TestClient]]:
    """Replicas A and B: two runtimes and apps on the same database, each with its own pool
    and its own listening connection (DATABASE_LISTEN_URL)."""
    shared = settings.model_copy(update={"database_listen_url": SecretStr(direct_url)})
    runtimes = [Runtime(shared), Runtime(shared)]
    for runtime in runtimes:
        await runtime.start()
    try:
        await demo.seed(runtimes[0])
        apps = [create_app(runtime, [install]) for runtime in runtimes]
        async with TestClient(TestServer(apps[0])) as a, TestClient(TestServer(apps[1])) as b:
            assert _relay(a).listening.is_set() and _relay(b).listening.is_set()
            yield a, b
    finally:
        for runtime in runtimes:
            await runtime.stop()


def _relay(client: TestClient) -> Relay:
    relay = client.app[WEBCHAT].relay
    assert relay is not None
    return relay


def _posts(events: Events) -> list[str]:
    return [data["id"] for name, data in events.seen if name == "post"]


async def test_a_channel_post_and_its_answer_on_a_reach_a_page_on_b_in_order_once(
    replicas: tuple[TestClient, TestClient], direct_url: str
) -> None:
    a, b = replicas
    eavesdropper = await asyncpg.connect(direct_url)
    payloads: list[str] = []
    await eavesdropper.add_listener(notify.CHANNEL, lambda *args: payloads.append(args[3]))
    try:
        async with listen(b, ALEX, channel="engineering") as on_b, \
                listen(a, ELI, channel="engineering") as on_a:  # fmt: skip
            sent = await ask(a, ELI, f"@deskmate {DEPLOY}", channel="engineering")
            question = sent["post"]
            answer = await on_b.post(reply_to=question["id"])
            mine = await on_a.post(reply_to=question["id"])
            marker = (await ask(a, ELI, "thanks!", channel="engineering"))["post"]
            await on_b.post(text="thanks!")
            await on_a.post(text="thanks!")
    finally:
        await eavesdropper.close()

    assert answer == mine and answer["author"]["kind"] == "bot"
    assert "Deploy Process" in answer["text"] and answer["sources"]
    assert _posts(on_b) == [question["id"], answer["id"], marker["id"]]
    assert _posts(on_a) == _posts(on_b)  # its own posts once too, though it hears its notes
    # The answer is written on A: only A's pages watch it being written; B's get it whole.
    assert on_a.deltas(question["id"]) and not on_b.pieces(question["id"])
    # What crosses the database's notification channel is ids, never what was said.
    assert payloads and all(len(p) < 200 for p in payloads)
    assert not any("roll back" in p or "Deploy" in p or "thanks" in p for p in payloads)
    assert {json.loads(p)["kind"] for p in payloads} == {"post"}


async def test_a_dm_asked_on_a_is_answered_on_the_askers_page_on_b(
    replicas: tuple[TestClient, TestClient],
) -> None:
    a, b = replicas
    async with listen(b, HANA) as hers, listen(b, ALEX) as his:
        first = (await ask(a, HANA, LEAVE))["post"]
        answer = await hers.post(reply_to=first["id"])
        second = (await ask(a, HANA, "And for the second parent?"))["post"]
        await hers.post(reply_to=second["id"])
        await ask(a, ALEX, "hello")
        await his.post(text="hello")

    # Her question (the id her page already shows it under), then its answer; once each.
    shown = [data for name, data in hers.seen if name == "post"]
    assert [p["id"] for p in shown][::2] == [first["id"], second["id"]]
    assert [p["reply_to"] for p in shown][1::2] == [first["id"], second["id"]]
    assert shown[0]["text"] == LEAVE and shown[0]["author"]["email"] == HANA
    assert answer["status"] == "offline" and "16 weeks" in answer["text"]
    assert answer["sources"][0]["label"] == "Leave Policy › Parental leave"
    assert isinstance(answer["feedback"], int)  # 👍/👎 work on B as well
    assert not any(HANA in json.dumps(data) for _, data in his.seen)


async def test_a_command_reply_crosses_only_to_the_asker(
    replicas: tuple[TestClient, TestClient],
) -> None:
    a, b = replicas
    async with listen(b, HANA, channel="sales") as hers, \
            listen(b, ALEX, channel="sales") as his:  # fmt: skip
        sent = await ask(a, HANA, "@deskmate memories", channel="sales")
        reply = await hers.post(reply_to=sent["post"]["id"])
        await ask(a, ALEX, "after", channel="sales")
        await his.post(text="after")
        after = (await hers.post(text="after"))["id"]
    assert reply["ephemeral"] is True and "Runs payroll" in reply["text"]
    assert not any("Runs payroll" in e.get("text", "") for _, e in his.seen)
    assert _posts(his) == [sent["post"]["id"], after]
    assert _posts(hers) == [sent["post"]["id"], reply["id"], after]


async def test_a_scheduled_post_and_its_edit_on_a_reach_b_once(
    replicas: tuple[TestClient, TestClient],
) -> None:
    a, b = replicas
    sender, ops = a.app[RUNTIME].senders.get("web"), Target.parse("web:#ops")
    async with listen(b, ELI, channel="ops") as on_b, listen(a, ELI, channel="ops") as on_a:
        posted = await sender.post(ops, Outbound(text="Deploy at 14:00", idempotency_key="d:1"))
        await sender.post(ops, Outbound(text="Deploy at 14:00", idempotency_key="d:1"))  # retried
        await sender.update(ops, posted.message_id, Outbound(text="Deployed."))
        edited = await on_b.wait(lambda name, _: name == "update")
        # From B: A hears it after anything A's own listener might have heard before it.
        await b.app[RUNTIME].senders.get("web").post(ops, Outbound(text="next"))
        for page in (on_a, on_b):
            await page.post(text="next")
    assert edited["id"] == f"p{posted.message_id}" and edited["text"] == "Deployed."
    for page in (on_a, on_b):
        assert [name for name, _ in page.seen] == ["ready", "post", "update", "post"]


async def test_when_bs_listening_connection_is_cut_it_listens_again_and_misses_nothing(
    replicas: tuple[TestClient, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = replicas
    relay = _relay(b)
    # B's first attempt to listen again fails (the server is still restarting), and the next
    # waits until the test says so: what A makes meanwhile is surely missed live.
    attempts: list[str] = []
    retrying, allowed = asyncio.Event(), asyncio.Event()
    real_listen = notify.listen

    async def held(url: str, on_note: Any) -> notify.Listening:
        attempts.append(url)
        if len(attempts) == 1:
            raise DatabaseUnavailable("the database system is starting up")
        retrying.set()
        await allowed.wait()
        return await real_listen(url, on_note)

    monkeypatch.setattr(notify, "listen", held)
    async with listen(b, ELI, channel="engineering") as channel_on_b, listen(b, HANA) as dm_on_b, \
            listen(a, ELI, channel="engineering") as on_a, listen(a, HANA) as dm_on_a:  # fmt: skip
        cut = relay.backend_pid
        async with a.app[RUNTIME].db.pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", cut)
        await asyncio.wait_for(retrying.wait(), 10)

        asked = (await ask(a, ELI, f"@deskmate {DEPLOY}", channel="engineering"))["post"]
        answered = await on_a.post(reply_to=asked["id"])
        dm = (await ask(a, HANA, LEAVE))["post"]
        await dm_on_a.post(reply_to=dm["id"])
        assert not relay.listening.is_set()  # all of it happened while B was not listening

        allowed.set()
        caught_up = await channel_on_b.post(reply_to=asked["id"])
        dm_answer = await dm_on_b.post(reply_to=dm["id"])
        assert relay.listening.is_set() and relay.backend_pid != cut and len(attempts) == 2
        later = (await ask(a, ELI, "live again", channel="engineering"))["post"]
        await channel_on_b.post(text="live again")

    assert caught_up == answered
    assert _posts(channel_on_b) == [asked["id"], answered["id"], later["id"]]
    assert _posts(dm_on_b) == [dm["id"], dm_answer["id"]]
    assert "16 weeks" in dm_answer["text"]


async def test_behind_a_transaction_pooler_without_a_listen_url_pages_see_their_replica_only(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    pooled = settings.model_copy(update={"database_pooler": Pooler.PGBOUNCER})
    runtime = Runtime(pooled)
    await runtime.start()
    try:
        async with TestClient(TestServer(create_app(runtime, [install]))) as client:
            relay = _relay(client)
            assert not relay.listening.is_set() and relay.backend_pid is None
    finally:
        await runtime.stop()
    assert "set DATABASE_LISTEN_URL to reach PostgreSQL directly" in caplog.text
