"""`deskmate chat` (a terminal conversation through the real pipeline) and `deskmate demo`."""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, TextIO

from bot.directory import Directory
from bot.errors import NotFound, UsageError
from bot.messages import IncomingMessage, Reply
from bot.settings import Settings
from deskmate.cli.options import add_tenant_option

if TYPE_CHECKING:
    from rich.console import Console
    from rich.markdown import Markdown

    from bot.runtime import Runtime
    from storage.users import User

EXIT_WORDS = {"exit", "quit", ":q"}


def register(commands: Any) -> None:
    chat = commands.add_parser(
        "chat", help="talk to deskmate in the terminal",
        description="A terminal conversation through the same pipeline as Slack and Teams.",
    )  # fmt: skip
    chat.add_argument(
        "--as",
        dest="as_email",
        metavar="EMAIL",
        help="the directory user to talk as (default: the first super user)",
    )
    chat.add_argument(
        "--channel",
        metavar="ID",
        help="talk as in this web channel (e.g. '#sales') instead of a DM",
    )
    add_tenant_option(chat)
    chat.set_defaults(handler=run_chat)

    demo = commands.add_parser(
        "demo", help="seed the demo organisation (idempotent)",
        description="Seed Northwind Outfitters: users, channels, handbooks, memories.",
    )  # fmt: skip
    demo.add_argument(
        "--once",
        action="store_true",
        help="do nothing when the demo was seeded before (used by `make run`)",
    )
    add_tenant_option(demo)
    demo.set_defaults(handler=run_demo)


async def run_demo(args: argparse.Namespace, settings: Settings) -> int:
    from bot import demo
    from bot.runtime import Runtime

    runtime = Runtime(settings)
    await runtime.start()
    try:
        if args.once and await demo.already_seeded(runtime):
            print("the demo organisation is already there")
            return 0
        reports = await demo.seed(runtime, tenant=args.tenant)
    finally:
        await runtime.stop()
    chunks = sum(len(r.added) + len(r.updated) for r in reports)
    print(f"demo organisation ready: {len(demo.USERS)} users, {len(demo.CHANNELS)} web channels, "
          f"{sum(r.files for r in reports)} handbooks ({chunks} loaded or refreshed)")  # fmt: skip
    print("try: deskmate chat --as alex.martin@northwind.example")
    return 0


async def run_chat(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: Claude's SDK takes a second to import, which `--help` should not pay.
    from bot.runtime import Runtime

    runtime = Runtime(settings)
    await runtime.start()
    try:
        user = await _chat_user(runtime, args.tenant, args.as_email)
        mode = f"Claude ({settings.anthropic_model})" if runtime.claude else "offline mode"
        where = f"in {args.channel}" if args.channel else "in a direct message"
        print(f"Talking as {user.display_name} <{user.email}> {where}, {mode}. "
              "Type 'help' for commands, 'exit' to leave.")  # fmt: skip
        async for line in _lines("you> "):
            if line.strip().lower() in EXIT_WORDS:
                break
            if line.strip():
                await _ask(runtime, args, user.email, line)
    finally:
        await runtime.stop()
    return 0


async def _chat_user(runtime: Runtime, tenant: str, email: str | None) -> User:
    entries = await Directory(runtime.db, actor="chat").list_users(tenant)
    active = [e.user for e in entries if e.user.is_active]
    if email is not None:
        for user in active:
            if user.email == email.strip().lower():
                return user
        raise NotFound(f"no active user with email {email}")
    if not active:
        raise UsageError("the directory is empty: run 'deskmate demo' or 'deskmate users add'")
    return next((u for u in active if u.is_super_user), active[0])


async def _ask(runtime: Runtime, args: argparse.Namespace, email: str, text: str) -> None:
    message = IncomingMessage(
        platform="web", user_id=email, conversation_id=args.channel or f"terminal:{email}",
        text=text, is_direct=args.channel is None, tenant=args.tenant, trusted_email=email,
    )  # fmt: skip

    with answer_view(sys.stdout) as view:
        reply = await runtime.conversation.handle(message, on_delta=view.delta)
        view.finish(reply)


def answer_view(out: TextIO) -> PlainAnswer | RichAnswer:
    """Markdown drawn by rich on a terminal; raw text, as it always was, into a pipe or a file
    (scripts and tests read that)."""
    if not out.isatty():
        return PlainAnswer(out)
    from rich.console import Console  # rich is imported when drawn: `--help` stays quick

    return RichAnswer(Console(file=out))


def sources_line(reply: Reply) -> str | None:
    if not reply.sources:
        return None
    listed = "; ".join(f"[{s.number}] {s.label} ({s.department})" for s in reply.sources)
    return f"sources: {listed}"


class PlainAnswer:
    """An answer written as it streams in, character for character."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __enter__(self) -> PlainAnswer:
        self.out.write("deskmate> ")
        return self

    def __exit__(self, *exc: object) -> None:
        self.out.flush()

    async def delta(self, piece: str) -> None:
        self.out.write(piece)
        self.out.flush()

    def finish(self, reply: Reply) -> None:
        self.out.write("\n")
        line = sources_line(reply)
        if line:
            print(line, file=self.out)
        print(file=self.out, flush=True)


class RichAnswer:
    """An answer drawn as Markdown (tables, lists, emphasis), redrawn as it streams in."""

    REFRESHES_PER_SECOND = 8

    def __init__(self, console: Console) -> None:
        from rich.live import Live

        self.console = console
        self.text = ""
        self.live = Live(
            console=console, refresh_per_second=self.REFRESHES_PER_SECOND,
            vertical_overflow="visible",
        )  # fmt: skip

    def __enter__(self) -> RichAnswer:
        self.console.print("deskmate>", style="bold", markup=False, highlight=False)
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.stop()  # also when the answer failed: the terminal gets its cursor back

    async def delta(self, piece: str) -> None:
        self.text += piece
        self.live.update(markdown(self.text))

    def finish(self, reply: Reply) -> None:
        self.live.update(markdown(reply.text), refresh=True)
        self.live.stop()
        line = sources_line(reply)
        if line:
            self.console.print(line, style="dim", markup=False, highlight=False)
        self.console.print()


def markdown(text: str) -> Markdown:
    from rich.markdown import Markdown

    # Links spelled out: not every terminal follows the escape codes of a clickable link.
    return Markdown(text, hyperlinks=False)


async def _lines(prompt: str) -> AsyncIterator[str]:
    """Lines typed at the prompt. A daemon thread reads stdin so Ctrl-C never waits on it."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\n"))
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=read, name="stdin", daemon=True).start()
    while True:
        if sys.stdin.isatty():
            sys.stdout.write(prompt)
            sys.stdout.flush()
        line = await queue.get()
        if line is None:
            return
        yield line
