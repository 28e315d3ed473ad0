"""`deskmate chat`'s answers: Markdown drawn by rich on a terminal, raw text into a pipe."""

from __future__ import annotations

import io
import re

from rich.console import Console

from bot.messages import Reply, ReplyStatus, Source
from deskmate.cli.talk import PlainAnswer, RichAnswer, answer_view

ANSWER = (
    "***Read this first:*** primary carers get 16 weeks [1].\n\n"
    "| Plan | Days |\n|:--|--:|\n| Basic | 25 |\n| Plus | 30 |\n\n"
    "- Parental leave\n  - primary carer\n  - partner\n\n"
    "See [the policy](https://en.wikipedia.org/wiki/Parental_leave_(Germany))."
)
SOURCES = (Source(1, "Leave Policy", "Parental leave", "hr", document_id=1, chunk_id=1),)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def shown(view: PlainAnswer | RichAnswer, pieces: list[str], reply: Reply) -> None:
    with view:
        for piece in pieces:
            await view.delta(piece)
        view.finish(reply)


async def test_a_pipe_gets_the_answer_as_raw_text_as_before() -> None:
    out = io.StringIO()
    view = answer_view(out)
    assert isinstance(view, PlainAnswer)
    reply = Reply(ANSWER, ReplyStatus.ANSWERED, sources=SOURCES)
    await shown(view, [ANSWER[:20], ANSWER[20:]], reply)
    assert out.getvalue() == (
        f"deskmate> {ANSWER}\nsources: [1] Leave Policy › Parental leave (hr)\n\n"
    )


async def test_a_terminal_sees_the_markdown_drawn() -> None:
    out = Terminal()
    console = Console(file=out, force_terminal=True, width=70, color_system="standard")
    view = RichAnswer(console)
    reply = Reply(ANSWER, ReplyStatus.ANSWERED, sources=SOURCES)
    await shown(view, [ANSWER[:30], ANSWER[30:]], reply)
    drawn = out.getvalue()
    seen = ANSI.sub("", drawn)
    final = seen[seen.rindex("deskmate>") :]
    assert "\x1b[1;3mRead this first:\x1b[0m" in drawn  # bold italic, no asterisks
    assert "*" not in final and "|" not in final and "--:" not in final
    assert re.search(r"Plan\s+Days", final) and "─" in final  # a table, drawn
    assert re.search(r"Basic\s+25", final)
    assert re.search(r"• Parental leave\s*\n\s+• primary carer", final)  # nested, indented
    assert "https://en.wikipedia.org/wiki/Parental_leave_(Germany)" in final
    assert "[1]" in final and "sources: [1] Leave Policy › Parental leave (hr)" in final


def test_stdout_on_a_terminal_gets_rich() -> None:
    assert isinstance(answer_view(Terminal()), RichAnswer)
