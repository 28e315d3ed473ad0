"""`schedule …` typed in a chat (Slack's `/deskmate schedule …`, a DM, the web chat): the
same schedules as `deskmate schedule`, targeting the conversation it was typed in and acting as
the person who typed it."""

from __future__ import annotations

import argparse
import shlex
from typing import NoReturn

from bot.errors import UsageError
from bot.schedules import ScheduleRequest, Schedules, describe_what, describe_when, local_time
from storage.users import User

USAGE = (
    'Usage: `schedule list` · `schedule add (--at 2026-12-01T09:00 | --cron "0 9 * * 1-5") '
    "[--tz Europe/Paris] (--text … | --prompt … | --digest department:sales)` · "
    "`schedule pause|resume|delete|run-now ID`"
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}. {USAGE}")


def _parser() -> _Parser:
    parser = _Parser(prog="schedule", add_help=False)
    actions = parser.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", add_help=False)
    when = add.add_mutually_exclusive_group(required=True)
    when.add_argument("--at")
    when.add_argument("--cron")
    add.add_argument("--tz")
    what = add.add_mutually_exclusive_group(required=True)
    what.add_argument("--text")
    what.add_argument("--prompt")
    what.add_argument("--digest")
    actions.add_parser("list", add_help=False)
    for name in ("pause", "resume", "delete", "run-now"):
        actions.add_parser(name, add_help=False).add_argument("id", type=int)
    return parser


async def run_schedule_command(
    schedules: Schedules,
    arguments: str,
    *,
    tenant: str,
    platform: str,
    channel: str,
    requester: User,
) -> str:
    """Carry out one `schedule …` command; the reply text, or UsageError with the usage."""
    try:
        args = _parser().parse_args(shlex.split(arguments))
    except ValueError as exc:  # unbalanced quotes
        raise UsageError(f"{exc}. {USAGE}") from None
    if args.action == "list":
        return await _listing(schedules, tenant, channel)
    if args.action == "add":
        request = ScheduleRequest(
            platform=platform,
            channel=channel,
            text=args.text,
            prompt=args.prompt,
            digest=args.digest,
            at=args.at,
            cron=args.cron,
            timezone=args.tz or requester.timezone,
            run_as=requester.email,
        )
        made = await schedules.add(tenant, request, requester=requester)
        return (
            f"Scheduled #{made.id}: {describe_what(made)}, {describe_when(made)}; "
            f"next {local_time(made.next_run_at, made.timezone)}."
        )
    if args.action == "run-now":
        await schedules.run_now(tenant, args.id, requester=requester)
        return f"Schedule #{args.id} runs now."
    change = {"pause": schedules.pause, "resume": schedules.resume, "delete": schedules.delete}
    changed = await change[args.action](tenant, args.id, requester=requester)
    return f"Schedule #{changed.id} is now {changed.status}."


async def _listing(schedules: Schedules, tenant: str, channel: str) -> str:
    found = [s for s in await schedules.listing(tenant) if s.schedule.channel == channel]
    if not found:
        return "No schedule posts here. " + USAGE
    lines = ["Schedules posting here:"]
    for summary in found:
        s = summary.schedule
        lines.append(f"• #{s.id} {describe_what(s)}, {describe_when(s)} — {s.status}")
    return "\n".join(lines)
