"""`deskmate alerts add/list/enable/disable/ack/history`."""

from __future__ import annotations

import argparse
import getpass
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bot.alerts.engine import SYMBOLS
from bot.alerts.notices import format_value
from bot.alerts.rules import METRICS, SEVERITIES, AlertRules
from bot.settings import Settings
from deskmate.cli.options import add_tenant_option, print_table
from storage.alert_sql import VIEWS
from storage.alerts import NewRule
from storage.database import Database


@asynccontextmanager
async def alert_rules(settings: Settings) -> AsyncIterator[AlertRules]:
    from bot.schedules import platforms_on

    db = Database(settings.database)
    try:
        await db.start(migrate=True)
        # The running services share these settings: a platform off here is off there.
        yield AlertRules(db, actor=f"cli:{getpass.getuser()}", platforms=platforms_on(settings))
    finally:
        await db.stop()


def register(commands: Any) -> None:

    alerts = commands.add_parser(
        "alerts",
        help="alert rules over deskmate's own metrics",
        description="Alert rules over deskmate's own metrics.",
    )
    actions = alerts.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)

    add = actions.add_parser("add", help="add a rule", description="Add an alert rule.")
    add.add_argument("name")
    add.add_argument("--metric", required=True, choices=METRICS)
    add.add_argument("--condition", required=True, choices=sorted(SYMBOLS))
    add.add_argument("--threshold", required=True, type=float)
    add.add_argument("--window", type=int, default=15, help="minutes (default: %(default)s)")
    add.add_argument(
        "--interval",
        type=int,
        default=60,
        help="seconds between evaluations (default: %(default)s)",
    )
    add.add_argument(
        "--for",
        dest="for_minutes",
        type=int,
        default=0,
        help="minutes the condition must hold before firing (default: 0)",
    )
    add.add_argument("--severity", choices=SEVERITIES, default="warning")
    add.add_argument(
        "--notify",
        action="append",
        default=[],
        metavar="PLATFORM:CHANNEL",
        help="where to post, e.g. slack:C0123 or web:#ops (repeatable)",
    )
    add.add_argument(
        "--cooldown",
        type=int,
        default=60,
        help="minutes between reminders while firing (default: %(default)s)",
    )
    add.add_argument(
        "--sql",
        help="custom_sql: one SELECT returning one number, over the views "
        f"{', '.join(VIEWS)} (this organisation's rows only), with aggregates, arithmetic "
        "and date functions; $1 tenant id, $2/$3 window start/end",
    )
    add.add_argument("--description")
    add_tenant_option(add)
    add.set_defaults(handler=alerts_add)

    listing = actions.add_parser("list", help="list rules", description="List alert rules.")
    add_tenant_option(listing)
    listing.set_defaults(handler=alerts_list)

    for action, enabled in (("enable", True), ("disable", False)):
        sub = actions.add_parser(
            action, help=f"{action} a rule", description=f"{action.capitalize()} an alert rule."
        )
        sub.add_argument("name")
        add_tenant_option(sub)
        sub.set_defaults(handler=alerts_enable, enabled=enabled)

    ack = actions.add_parser(
        "ack",
        help="acknowledge a firing alert",
        description="Acknowledge a firing alert: no more reminders.",
    )
    ack.add_argument("alert_id", type=int)
    ack.add_argument("--as", dest="who", help="who acknowledges (default: your login)")
    add_tenant_option(ack)
    ack.set_defaults(handler=alerts_ack)

    history = actions.add_parser(
        "history",
        help="firing episodes, newest first",
        description="Firing episodes of all rules, or of one.",
    )
    history.add_argument("name", nargs="?")
    add_tenant_option(history)
    history.set_defaults(handler=alerts_history)


async def alerts_add(args: argparse.Namespace, settings: Settings) -> int:
    new = NewRule(
        name=args.name,
        metric_type=args.metric,
        condition=args.condition,
        threshold=args.threshold,
        window_minutes=args.window,
        evaluation_interval_seconds=args.interval,
        for_minutes=args.for_minutes,
        custom_sql=args.sql,
        severity=args.severity,
        notification_channels=tuple(args.notify),
        cooldown_minutes=args.cooldown,
        description=args.description,
    )
    async with alert_rules(settings) as rules:
        rule = await rules.add(args.tenant, new)
    where = ", ".join(rule.notification_channels) or "no channel"
    print(
        f"added alert rule {rule.name!r}: {rule.metric_type} {SYMBOLS[rule.condition]} "
        f"{format_value(rule.threshold, rule.metric_type)}, notifying {where}"
    )
    return 0


async def alerts_list(args: argparse.Namespace, settings: Settings) -> int:
    async with alert_rules(settings) as rules:
        found = await rules.listing(args.tenant)
    rows = [("NAME", "METRIC", "CONDITION", "WINDOW", "SEVERITY", "STATE", "LAST VALUE", "NOTIFY")]
    for r in found:
        state = r.state if r.enabled else "disabled"
        if r.last_error:
            state += " (error)"
        last = format_value(r.last_value, r.metric_type) if r.last_evaluated_at else "-"
        rows.append(
            (
                r.name,
                r.metric_type,
                f"{SYMBOLS[r.condition]} {format_value(r.threshold, r.metric_type)}",
                f"{r.window_minutes}m",
                r.severity,
                state,
                last,
                ",".join(r.notification_channels) or "-",
            )
        )
    print_table(rows)
    return 0


async def alerts_enable(args: argparse.Namespace, settings: Settings) -> int:
    async with alert_rules(settings) as rules:
        rule = await rules.set_enabled(args.tenant, args.name, args.enabled)
    print(f"alert rule {rule.name!r} is now {'enabled' if rule.enabled else 'disabled'}")
    return 0


async def alerts_ack(args: argparse.Namespace, settings: Settings) -> int:
    async with alert_rules(settings) as rules:
        rule, instance = await rules.acknowledge(
            args.tenant, args.alert_id, args.who or f"cli:{getpass.getuser()}"
        )
    print(f"alert {instance.id} ({rule.name}) acknowledged by {instance.acknowledged_by}")
    return 0


async def alerts_history(args: argparse.Namespace, settings: Settings) -> int:
    async with alert_rules(settings) as rules:
        episodes = await rules.history(args.tenant, args.name)
    rows = [("ID", "RULE", "STATE", "STARTED", "RESOLVED", "VALUE", "ACKNOWLEDGED BY")]
    for rule, i in episodes:
        rows.append(
            (
                str(i.id),
                rule.name,
                i.state,
                f"{i.started_at:%Y-%m-%d %H:%M}",
                f"{i.resolved_at:%Y-%m-%d %H:%M}" if i.resolved_at else "-",
                format_value(i.metric_value, rule.metric_type),
                i.acknowledged_by or "-",
            )
        )
    print_table(rows)
    return 0
