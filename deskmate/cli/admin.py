"""`deskmate users …` and `deskmate channels …`: directory administration."""

from __future__ import annotations

import argparse
import getpass
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bot.directory import PLATFORMS, Directory, NewUser, parse_departments
from bot.settings import Settings
from deskmate.cli.options import add_tenant_option, print_table
from storage.database import Database


@asynccontextmanager
async def directory(settings: Settings) -> AsyncIterator[Directory]:
    db = Database(settings.database)
    try:
        await db.start(migrate=True)
        yield Directory(
            db, actor=f"cli:{getpass.getuser()}", default_timezone=settings.default_timezone
        )
    finally:
        await db.stop()


def register(commands: Any) -> None:

    users = commands.add_parser(
        "users", help="manage the directory of users", description="Manage the directory of users."
    )
    user_commands = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)

    add = user_commands.add_parser(
        "add",
        help="add a user or update an existing one",
        description="Add a user, or update the user with that email.",
    )
    add.add_argument("email")
    add.add_argument(
        "--departments",
        required=True,
        type=_departments,
        help="departments the user may read, comma-separated (e.g. sales,hr)",
    )
    add.add_argument(
        "--head-of",
        type=_departments,
        default=[],
        help="departments the user heads, comma-separated",
    )
    add.add_argument(
        "--super", action="store_true", dest="super_user", help="may read every department"
    )
    add.add_argument("--name", help="display name (default: from the email)")
    add.add_argument("--slack-id", help="Slack member id (U…), optionally TEAM:U…")
    add.add_argument("--teams-id", help="Teams AAD object id, optionally TENANT:ID")
    add.add_argument("--tz", help="IANA time zone, e.g. Europe/Berlin")
    add_tenant_option(add)
    add.set_defaults(handler=users_add)

    listing = user_commands.add_parser("list", help="list users", description="List users.")
    add_tenant_option(listing)
    listing.set_defaults(handler=users_list)

    for action, active in (("disable", False), ("enable", True)):
        sub = user_commands.add_parser(
            action, help=f"{action} a user", description=f"{action.capitalize()} a user by email."
        )
        sub.add_argument("email")
        add_tenant_option(sub)
        sub.set_defaults(handler=users_set_active, active=active)

    channels = commands.add_parser(
        "channels",
        help="manage channel clearances",
        description="Clear channels for departments' documents.",
    )
    channel_commands = channels.add_subparsers(
        dest="channels_command", metavar="ACTION", required=True
    )
    mapping = channel_commands.add_parser(
        "map",
        help="clear a channel for a department's documents",
        description="Clear a channel for a department: answers there may quote its documents.",
    )
    mapping.add_argument("--platform", required=True, choices=PLATFORMS)
    mapping.add_argument("--channel", required=True, help="channel or conversation id")
    mapping.add_argument("--department", required=True)
    add_tenant_option(mapping)
    mapping.set_defaults(handler=channels_map)

    clist = channel_commands.add_parser(
        "list", help="list channel clearances", description="List channel clearances."
    )
    clist.add_argument("--platform", choices=PLATFORMS)
    add_tenant_option(clist)
    clist.set_defaults(handler=channels_list)


def _departments(text: str) -> list[str]:
    from bot.errors import UsageError

    try:
        return parse_departments(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


async def users_add(args: argparse.Namespace, settings: Settings) -> int:
    new = NewUser(
        email=args.email,
        departments=args.departments,
        head_of=args.head_of,
        is_super_user=args.super_user,
        display_name=args.name,
        timezone=args.tz,
        slack_id=args.slack_id,
        teams_id=args.teams_id,
    )
    async with directory(settings) as admin:
        user, created = await admin.add_user(args.tenant, new)
    verb = "added" if created else "updated"
    print(f"{verb} {user.email} ({', '.join(user.department_access) or 'public only'})")
    return 0


async def users_list(args: argparse.Namespace, settings: Settings) -> int:
    async with directory(settings) as admin:
        entries = await admin.list_users(args.tenant)
    rows = [("EMAIL", "NAME", "DEPARTMENTS", "HEAD OF", "ROLE", "STATUS", "IDENTITIES")]
    for entry in entries:
        u = entry.user
        ids = " ".join(f"{i.platform}:{i.platform_user_id}" for i in entry.identities)
        rows.append(
            (
                u.email,
                u.display_name,
                ",".join(u.department_access) or "-",
                ",".join(u.dept_head_for) or "-",
                "super" if u.is_super_user else "user",
                "active" if u.is_active else "disabled",
                ids or "-",
            )
        )
    print_table(rows)
    if not entries:
        print("(no users yet: add one with 'deskmate users add EMAIL --departments …')")
    return 0


async def users_set_active(args: argparse.Namespace, settings: Settings) -> int:
    async with directory(settings) as admin:
        user = await admin.set_active(args.tenant, args.email, args.active)
    print(f"{user.email} is now {'active' if user.is_active else 'disabled'}")
    return 0


async def channels_map(args: argparse.Namespace, settings: Settings) -> int:
    async with directory(settings) as admin:
        added = await admin.map_channel(args.tenant, args.platform, args.channel, args.department)
    state = "is now cleared" if added else "was already cleared"
    print(f"{args.platform} channel {args.channel} {state} for {args.department}")
    return 0


async def channels_list(args: argparse.Namespace, settings: Settings) -> int:
    async with directory(settings) as admin:
        clearances = await admin.list_channels(args.tenant, args.platform)
    rows = [("PLATFORM", "CHANNEL", "DEPARTMENT", "BY")]
    rows += [(c.platform, c.channel_id, c.department, c.created_by or "-") for c in clearances]
    print_table(rows)
    return 0
