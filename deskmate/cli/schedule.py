"""`deskmate schedule …`: scheduled messages (SPEC §5), delivered by the running services."""

from __future__ import annotations

import argparse
import getpass
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from bot.directory import PLATFORMS
from bot.settings import Settings
from deskmate.cli.options import add_tenant_option, print_table
from storage.database import Database

if TYPE_CHECKING:
    from bot.schedules import Schedules


@asynccontextmanager
async def manager(settings: Settings) -> AsyncIterator[Schedules]:
    # Imported here: the digest code pulls in Claude's SDK, which `--help` should not pay for.
    from bot.schedules import Schedules, platforms_on

    db = Database(settings.database)
    try:
        await db.start(migrate=True)
        # The running services share these settings: a platform off here is off there.
        yield Schedules(db, actor=f"cli:{getpass.getuser()}",
                        default_timezone=settings.default_timezone,
                        public_departments=settings.public_departments,
                        platforms=platforms_on(settings))  # fmt: skip
    finally:
        await db.stop()


def register(commands: Any) -> None:
    schedule = commands.add_parser(
        "schedule", help="manage scheduled messages",
        description="Scheduled messages: text, prompts answered from documents, and digests.",
    )  # fmt: skip
    actions = schedule.add_subparsers(dest="schedule_command", metavar="ACTION", required=True)

    add = actions.add_parser(
        "add", help="schedule a message",
        description="Schedule a message once (--at) or on a cron expression (--cron, --tz).",
    )  # fmt: skip
    add.add_argument("--platform", required=True, choices=PLATFORMS)
    add.add_argument("--channel", required=True, help="channel or conversation id (web: #name)")
    when = add.add_mutually_exclusive_group(required=True)
    when.add_argument("--at", help="once, at this ISO time, e.g. 2026-03-10T09:00")
    when.add_argument("--cron", help="recurring, e.g. '0 9 * * 1-5' (weekdays at 09:00)")
    add.add_argument("--tz", help="IANA time zone of --cron / --at (default: DEFAULT_TIMEZONE)")
    what = add.add_mutually_exclusive_group(required=True)
    what.add_argument("--text", help="post this text")
    what.add_argument("--prompt", help="post deskmate's answer to this question, with sources")
    what.add_argument(
        "--digest", metavar="SCOPE", help="post a digest of department:NAME or channel:ID"
    )
    add.add_argument("--as", dest="run_as", metavar="EMAIL",
                     help="the person the schedule acts as (required for --prompt)")  # fmt: skip
    add_tenant_option(add)
    add.set_defaults(handler=schedule_add)

    listing = actions.add_parser("list", help="list schedules", description="List schedules.")
    listing.add_argument("--all", action="store_true", help="include deleted schedules")
    add_tenant_option(listing)
    listing.set_defaults(handler=schedule_list)

    for action, text in (("pause", "stop sending (runs not started yet are dropped)"),
                         ("resume", "send again from the next slot"),
                         ("delete", "stop for good (the history stays)"),
                         ("run-now", "deliver once now, also while paused")):  # fmt: skip
        sub = actions.add_parser(action, help=text, description=f"{action}: {text}.")
        sub.add_argument("id", type=_schedule_id, help="the schedule's id (see 'schedule list')")
        add_tenant_option(sub)
        sub.set_defaults(handler=schedule_change, action=action)

    runs = actions.add_parser(
        "runs", help="show a schedule's latest runs", description="A schedule's latest runs."
    )
    runs.add_argument("id", type=_schedule_id)
    runs.add_argument("--limit", type=_schedule_id, default=20, help="(default: %(default)s)")
    add_tenant_option(runs)
    runs.set_defaults(handler=schedule_runs)


def _schedule_id(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return int(text)


async def schedule_add(args: argparse.Namespace, settings: Settings) -> int:
    from bot.schedules import ScheduleRequest, describe_what, describe_when, local_time

    request = ScheduleRequest(
        platform=args.platform, channel=args.channel, text=args.text, prompt=args.prompt,
        digest=args.digest, at=args.at, cron=args.cron, timezone=args.tz, run_as=args.run_as,
    )  # fmt: skip
    async with manager(settings) as schedules:
        s = await schedules.add(args.tenant, request)
    print(f"added schedule {s.id}: {describe_what(s)} → {s.platform}:{s.channel}, "
          f"{describe_when(s)}, next {local_time(s.next_run_at, s.timezone)}")  # fmt: skip
    return 0


async def schedule_list(args: argparse.Namespace, settings: Settings) -> int:
    from bot.schedules import describe_what, describe_when, local_time

    async with manager(settings) as schedules:
        summaries = await schedules.listing(args.tenant, include_deleted=args.all)
    rows = [("ID", "STATUS", "WHAT", "TARGET", "WHEN", "NEXT", "SENT", "FAILED", "LAST")]
    for summary in summaries:
        s = summary.schedule
        last = "-"
        if summary.last_slot is not None:
            last = f"{summary.last_status} {local_time(summary.last_slot, s.timezone)}"
        status = s.status + (f" ({s.last_error})" if s.last_error else "")
        rows.append((str(s.id), status, describe_what(s), f"{s.platform}:{s.channel}",
                     describe_when(s), local_time(s.next_run_at, s.timezone), str(summary.sent),
                     str(summary.failed), last))  # fmt: skip
    print_table(rows)
    if not summaries:
        print("(no schedules yet: add one with 'deskmate schedule add …')")
    return 0


async def schedule_change(args: argparse.Namespace, settings: Settings) -> int:
    from bot.schedules import local_time

    async with manager(settings) as schedules:
        if args.action == "run-now":
            run = await schedules.run_now(args.tenant, args.id)
            print(f"queued run {run.id} of schedule {args.id}: a running deskmate delivers it "
                  f"within {settings.scheduler_tick_seconds:g} s")  # fmt: skip
            return 0
        change = {"pause": schedules.pause, "resume": schedules.resume,
                  "delete": schedules.delete}[args.action]  # fmt: skip
        s = await change(args.tenant, args.id)
    print(
        f"schedule {s.id} is now {s.status}"
        + (f", next {local_time(s.next_run_at, s.timezone)}" if s.next_run_at else "")
    )
    return 0


async def schedule_runs(args: argparse.Namespace, settings: Settings) -> int:
    async with manager(settings) as schedules:
        runs = await schedules.runs(args.tenant, args.id, args.limit)
    rows = [("RUN", "SLOT (UTC)", "STATUS", "ATTEMPTS", "MESSAGE", "ERROR")]
    for r in runs:
        status = r.status + (" (run-now)" if r.manual else "")
        rows.append((str(r.id), f"{r.slot:%Y-%m-%d %H:%M:%S}", status, str(r.attempts),
                     r.platform_message_id or "-", r.error or "-"))  # fmt: skip
    print_table(rows)
    return 0
