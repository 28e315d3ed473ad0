"""What Slack is sent for an answer in Markdown: Slack's `markdown` block (which renders tables,
nested lists and `***bold italic***` as written), a readable mrkdwn fallback, and streams in
standard Markdown; Slack's own `<…>` tokens never reach it live."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from bot.embeddings import HashEmbedder
from bot.runtime import Runtime
from bot.settings import Settings
from handlers.http import create_app
from handlers.slack import install
from storage.database import Database
from tests.support import TEST_DIMENSION
from tests.support.factories import add_document, add_user, clear_channel
from tests.support.fakes.anthropic_server import FakeAnthropic, Text
from tests.support.fakes.slack_api import FakeSlack
from tests.support.slack_requests import SIGNING_SECRET, dm_event, mention_event, post_event

EM = "\u2003\u2003"  # one level of list indentation in mrkdwn
ANSWER = (
    "***Ask the VP Sales first:*** above 20% it is their call [1].\n\n"
    "| Discount | Approver |\n|:--|--:|\n| up to 10% | you |\n| above 20% | **VP Sales** |\n\n"
    "- Approvals\n  - write the reason in the CRM\n    - with the margin\n- Exceptions\n\n"
    "See [the policy](https://en.wikipedia.org/wiki/Discounts_(sales)). <!channel>"
)
# Slack reads <!channel> even inside a markdown block: escaped, it shows as text.
SENT = ANSWER.replace("<!channel>", "&lt;!channel>")


@dataclass
class World:
    client: TestClient
    runtime: Runtime
    slack: FakeSlack
    claude: FakeAnthropic

    async def ask(self, event: dict) -> None:
        self.claude.script.append(Text(ANSWER, chunk=25))
        response = await post_event(self.client, event)
        assert response.status == 200
        await self.runtime.tasks.join()


@pytest.fixture
async def world(
    settings: Settings, db: Database, fake_slack: FakeSlack, fake_anthropic: FakeAnthropic
) -> AsyncIterator[World]:
    slack_settings = settings.model_copy(update={
        "slack_bot_token": SecretStr("xoxb-test-token"),
        "slack_signing_secret": SecretStr(SIGNING_SECRET),
        "slack_api_url": fake_slack.url,
        "anthropic_api_key": SecretStr("sk-test"),
        "anthropic_base_url": fake_anthropic.url,
    })  # fmt: skip
    await add_user(db, "ana@example.com", ["sales"], slack_id="U-ANA")
    rule = "Discount approvals: above 20 percent needs the VP Sales"
    embedder = HashEmbedder(TEST_DIMENSION)
    await add_document(db, embedder, "sales", "Discount policy", {"Approvals": rule})
    await clear_channel(db, "slack", "C-SALES", "sales")
    runtime = Runtime(slack_settings)
    await runtime.start()
    async with TestClient(TestServer(create_app(runtime, [install]))) as client:
        yield World(client, runtime, fake_slack, fake_anthropic)
        await runtime.tasks.join()
    await runtime.stop()


async def test_a_channel_answer_is_a_markdown_block_with_a_mrkdwn_fallback(world: World) -> None:
    await world.ask(mention_event("who approves discounts?", channel="C-SALES"))
    final = world.slack.called("chat.update")[-1].body
    assert [b["type"] for b in final["blocks"]] == ["markdown", "context", "actions"]
    assert world.slack.markdown_blocks("chat.update")[-1] == [SENT]
    # The fallback (what notifications show) is mrkdwn that reads right.
    text = final["text"]
    assert text.startswith("*_Ask the VP Sales first:_* above 20% it is their call [1].")
    assert "```\nDiscount  | Approver\n----------+---------\nup to 10% |      you\n" in text
    assert "above 20% | VP Sales\n```" in text
    assert f"• Approvals\n{EM}◦ write the reason in the CRM\n{EM}{EM}▪ with the margin" in text
    assert "<https://en.wikipedia.org/wiki/Discounts_(sales)|the policy>" in text
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    edits = world.slack.called("chat.update")[:-1]  # while it streamed in: text only
    assert edits and all("blocks" not in edit.body for edit in edits)


async def test_a_dm_streams_standard_markdown_and_ends_with_sources(world: World) -> None:
    await world.ask(dm_event("who approves discounts?"))
    streamed = "".join(world.slack.posted_texts())
    assert streamed == SENT
    stop = world.slack.called("chat.stopStream")[0].body
    assert [b["type"] for b in stop["blocks"]] == ["context", "actions"]
    assert world.slack.called("chat.postMessage") == []


async def test_a_long_dm_answer_continues_in_markdown_messages_after_the_stream(
    world: World,
) -> None:
    paragraph = "**Approvals** depend on the deal size and the margin, as the policy says. " * 8
    long_answer = "\n\n".join([paragraph] * 14)
    world.claude.script.append(Text(long_answer, chunk=400))
    await post_event(world.client, dm_event("tell me everything"))
    await world.runtime.tasks.join()
    stream = [c for c in world.slack.calls if c.method.endswith("Stream")]
    streamed = "".join(world.slack.posted_texts()[: len(stream)])  # the stream comes first
    follow_ups = world.slack.called("chat.postMessage")
    assert follow_ups, "the rest of the answer was not posted"
    kinds = [[b["type"] for b in call.body["blocks"]] for call in follow_ups]
    assert kinds[:-1] == [["markdown"]] * (len(kinds) - 1) and kinds[-1][0] == "markdown"
    assert kinds[-1][-1] == "actions"  # 👍/👎 close the answer, after its last words
    rest = " ".join(texts[0] for texts in world.slack.markdown_blocks("chat.postMessage"))
    assert (streamed + " " + rest).split() == long_answer.split()  # nothing lost or doubled
