"""The fake Slack Web API and fake Claude in a process of their own, for benchmarks that load a
real `deskmate serve`: the load generator's event loop then measures deskmate, not the fakes.

`python -m bench.fake_platforms ANSWER_SECONDS` prints one line, `<slack url> <anthropic url>`,
and serves until its standard input closes. `GET <anthropic url>/bench/answers` returns how many
streamed answers each question got.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from typing import Any

from aiohttp import web

from tests.support.fakes.anthropic_server import FakeAnthropic, Text
from tests.support.fakes.slack_api import FakeSlack, start_fake_slack


class PacedClaude(FakeAnthropic):
    """Every answer streams for about `seconds`, as Claude's do."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def next_behaviour(self, body: dict[str, Any]) -> Any:
        if body.get("tool_choice"):
            return super().next_behaviour(body)
        return Text("The answer, as the handbook puts it [1].", chunk=4, delay=self.seconds)


def answers_per_question(fake: FakeAnthropic) -> dict[str, int]:
    asked: Counter[str] = Counter()
    for request in fake.answer_requests:
        last = request["messages"][-1]["content"]
        text = last if isinstance(last, str) else " ".join(b.get("text", "") for b in last)
        asked[text.rsplit("\n\n", 1)[-1]] += 1
    return dict(asked)


async def serve(answer_seconds: float) -> None:
    slack = FakeSlack()
    slack_runner = await start_fake_slack(slack)
    claude = PacedClaude(answer_seconds)
    app = claude.app()

    async def answers(_: web.Request) -> web.Response:
        return web.json_response(answers_per_question(claude))

    app.router.add_get("/bench/answers", answers)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(slack.url, f"http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    await asyncio.to_thread(sys.stdin.read)  # until the benchmark closes our input
    await runner.cleanup()
    await slack_runner.cleanup()


if __name__ == "__main__":
    asyncio.run(serve(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0))
