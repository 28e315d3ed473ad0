"""`deskmate budget show|set|clear`: monthly LLM budgets of an organisation and its people."""

from __future__ import annotations

import argparse
import getpass
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.budgets import Budgets, BudgetUsage, Limits
from bot.errors import UsageError
from bot.settings import Settings
from deskmate.cli.options import add_tenant_option, print_table
from storage.database import Database

NO_LIMIT = "none"


@asynccontextmanager
async def budgets(settings: Settings) -> AsyncIterator[Budgets]:
    db = Database(settings.database)
    try:
        await db.start(migrate=True)
        yield Budgets(db, settings)
    finally:
        await db.stop()


def register(commands: Any) -> None:
    budget = commands.add_parser(
        "budget",
        help="monthly LLM budgets",
        description="Monthly LLM budgets (UTC calendar months) of the organisation and its "
        "people: at the limit answers quote the documents instead of asking Claude.",
    )
    actions = budget.add_subparsers(dest="budget_command", metavar="ACTION", required=True)

    show = actions.add_parser(
        "show", help="this month's spending and limits", description="This month's budgets."
    )
    add_tenant_option(show)
    show.set_defaults(handler=budget_show)

    set_ = actions.add_parser(
        "set",
        help="set the budget of the organisation or of one person",
        description="Replace the default budget of the organisation (or of --user) with these "
        f"limits; a limit left out, or '{NO_LIMIT}', is no limit of that kind.",
    )
    set_.add_argument("--user", metavar="EMAIL", help="the person (default: the organisation)")
    # Left out, an option is absent from the namespace: '--usd none' and no --usd differ there.
    set_.add_argument("--usd", type=_usd, default=argparse.SUPPRESS,
                      help=f"US dollars a month, or '{NO_LIMIT}'")  # fmt: skip
    set_.add_argument("--tokens", type=_tokens, default=argparse.SUPPRESS,
                      help=f"tokens a month, or '{NO_LIMIT}'")  # fmt: skip
    add_tenant_option(set_)
    set_.set_defaults(handler=budget_set)

    clear = actions.add_parser(
        "clear",
        help="back to the default budget",
        description="Remove the budget set for the organisation (or --user): the settings' "
        "default applies again.",
    )
    clear.add_argument("--user", metavar="EMAIL", help="the person (default: the organisation)")
    add_tenant_option(clear)
    clear.set_defaults(handler=budget_clear)


async def budget_show(args: argparse.Namespace, settings: Settings) -> int:
    async with budgets(settings) as manager:
        own = await manager.usage(args.tenant)
        people = await manager.people(args.tenant)
        overrides = await manager.overrides(args.tenant)
    print(f"{own.month:%B %Y} (UTC)")
    rows = [("BUDGET", "TOKENS", "USD", "USED")]
    rows += [_row(args.tenant, own)]
    rows += [_row(p.email or f"user {p.user_id}", p) for p in people]
    print_table(rows)
    if overrides:
        set_for = ", ".join(o.email or "the organisation" for o in overrides)
        print(f"set with 'deskmate budget set': {set_for}; the others follow the settings")
    return 0


async def budget_set(args: argparse.Namespace, settings: Settings) -> int:
    given = {name: getattr(args, name) for name in ("usd", "tokens") if hasattr(args, name)}
    if not given:
        raise UsageError(f"give --usd and/or --tokens (a number, or '{NO_LIMIT}')")
    limits = Limits(given.get("usd"), given.get("tokens"))
    async with budgets(settings) as manager:
        await manager.set(args.tenant, limits, email=args.user, actor=_actor())
    print(f"budget of {args.user or args.tenant}: {_limit(limits.tokens, limits.usd)} a month")
    return 0


async def budget_clear(args: argparse.Namespace, settings: Settings) -> int:
    async with budgets(settings) as manager:
        cleared = await manager.clear(args.tenant, email=args.user, actor=_actor())
    who = args.user or args.tenant
    print(f"budget of {who}: the default again" if cleared else f"no budget was set for {who}")
    return 0


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _row(name: str, usage: BudgetUsage) -> tuple[str, str, str, str]:
    ratio = usage.used_ratio
    limits = usage.limits
    return (
        name,
        f"{usage.tokens:,}" + ("" if limits.tokens is None else f" / {limits.tokens:,}"),
        f"{usage.cost_usd:.2f}" + ("" if limits.usd is None else f" / {limits.usd:.2f}"),
        "no limit" if ratio is None else f"{ratio:.0%}",
    )


def _limit(tokens: int | None, usd: Decimal | None) -> str:
    parts = [f"{tokens:,} tokens" if tokens is not None else "",
             f"{usd:.2f} USD" if usd is not None else ""]  # fmt: skip
    return " and ".join(p for p in parts if p) or "no limit"


def _usd(text: str) -> Decimal | None:
    if text.lower() == NO_LIMIT:
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not an amount: {text!r}") from None
    if not amount.is_finite() or amount <= 0:
        raise argparse.ArgumentTypeError(f"a budget is a positive amount, not {text!r}")
    return amount.quantize(Decimal("0.01"))


def _tokens(text: str) -> int | None:
    if text.lower() == NO_LIMIT:
        return None
    try:
        count = int(text.replace(",", "").replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of tokens: {text!r}") from None
    if count <= 0:
        raise argparse.ArgumentTypeError(f"a budget is a positive number, not {text!r}")
    return count
