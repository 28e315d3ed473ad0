"""Managing alert rules (validated, audited) and acknowledging their episodes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Collection

from bot import tenancy
from bot.actions import Click, ClickResult
from bot.alerts import notices as messages
from bot.alerts.engine import CONDITIONS
from bot.errors import NotFound, UsageError
from bot.identity import resolve_user
from bot.messages import IncomingMessage
from bot.outbound import DeliveryError, Senders, Target
from storage import alert_metrics, alerts, audit
from storage.alert_metrics import CustomSQLError
from storage.alerts import Instance, NewRule, Rule
from storage.database import Database

logger = logging.getLogger("deskmate.alerts")

METRICS = (*alert_metrics.METRIC_SQL, "custom_sql")
SEVERITIES = ("info", "warning", "critical")
PLATFORMS = ("slack", "teams", "web")


def check_rule(new: NewRule) -> NewRule:
    """The rule, or UsageError naming what is wrong with it (in one sentence)."""
    if not new.name.strip():
        raise UsageError("the rule needs a name")
    if new.metric_type not in METRICS:
        raise UsageError(f"unknown metric {new.metric_type!r}: use one of {', '.join(METRICS)}")
    if new.condition not in CONDITIONS:
        raise UsageError(f"unknown condition {new.condition!r}: use gt, gte, lt, lte, eq or ne")
    if new.severity not in SEVERITIES:
        raise UsageError(f"unknown severity {new.severity!r}: use info, warning or critical")
    if (new.metric_type == "custom_sql") != bool(new.custom_sql):
        raise UsageError("--sql is required for custom_sql rules, and only for them")
    if new.window_minutes < 1 or new.cooldown_minutes < 1 or new.for_minutes < 0:
        raise UsageError("window and cooldown are at least 1 minute, for_minutes at least 0")
    if new.evaluation_interval_seconds < 10:
        raise UsageError("the evaluation interval is at least 10 seconds")
    for channel in new.notification_channels:
        try:
            target = Target.parse(channel)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if target.platform not in PLATFORMS:
            raise UsageError(f"unknown platform in {channel!r}: use slack:, teams: or web:")
        if target.platform == "web" and not _web_channel(target.channel):
            raise UsageError(f"{channel!r} is no web channel: write it like web:#ops")
    return new


def _web_channel(name: str) -> bool:
    # bot.schedules pulls in the digest's LLM client: `deskmate alerts --help` need not.
    from bot.schedules import WEB_CHANNEL

    return bool(WEB_CHANNEL.match(name))


def check_platforms(new: NewRule, platforms: Collection[str]) -> None:
    """Refuse a rule that would notify a platform that is off: its posts would wait forever."""
    from bot.schedules import TURN_ON

    for channel in new.notification_channels:
        platform = Target.parse(channel).platform
        if platform not in platforms:
            raise UsageError(
                f"{platform} is not configured in this deskmate, so nothing would post to "
                f"{channel}: {TURN_ON.get(platform, 'turn it on first')}"
            )


class AlertRules:
    """Alert rules of one database; every change is audited."""

    def __init__(
        self,
        db: Database,
        senders: Senders | None = None,
        *,
        actor: str = "system",
        default_timezone: str = "UTC",
        platforms: Collection[str] = PLATFORMS,
    ) -> None:
        """`platforms`: those a new rule may notify, `platforms_on(settings)`."""
        self.db = db
        self.senders = senders
        self.actor = actor
        self.default_timezone = default_timezone
        self.platforms = frozenset(platforms)

    async def add(self, tenant: str, new: NewRule, now: dt.datetime | None = None) -> Rule:
        """Save a rule; a custom_sql rule's query is tried first and rejected with the reason."""
        new = check_rule(dataclasses.replace(new, created_by=new.created_by or self.actor))
        check_platforms(new, self.platforms)
        now = now or dt.datetime.now(dt.UTC)
        tenant_id = await tenancy.tenant_id(self.db, tenant)
        async with self.db.transaction() as conn:
            if await alerts.get_rule(conn, tenant_id, new.name):
                raise UsageError(f"a rule called {new.name!r} exists already")
        if new.custom_sql:
            await self._try_query(tenant_id, new.custom_sql, now)
        async with self.db.transaction() as conn:
            rule = await alerts.add_rule(conn, tenant_id, new, now)
            await audit.record(
                conn,
                tenant_id=tenant_id,
                actor=self.actor,
                action="alert.add",
                target_type="alert_rule",
                target_id=rule.name,
                before=None,
                after=dataclasses.asdict(new),
            )
        return rule

    async def _try_query(self, tenant_id: int, sql: str, now: dt.datetime) -> None:
        try:
            await alert_metrics.custom_metric(
                self.db, sql, tenant_id, now - dt.timedelta(hours=1), now
            )
        except CustomSQLError as exc:
            raise UsageError(f"custom_sql rejected: {exc}") from None

    async def listing(self, tenant: str) -> list[Rule]:
        """The organisation's alert rules, enabled or not, by name."""
        tenant_id = await tenancy.tenant_id(self.db, tenant)
        async with self.db.pool.acquire() as conn:
            return await alerts.list_rules(conn, tenant_id)

    async def set_enabled(self, tenant: str, name: str, enabled: bool) -> Rule:
        tenant_id = await tenancy.tenant_id(self.db, tenant)
        async with self.db.transaction() as conn:
            rule = await alerts.set_enabled(conn, tenant_id, name, enabled)
            if rule is None:
                raise NotFound(f"no alert rule called {name!r}")
            await audit.record(
                conn,
                tenant_id=tenant_id,
                actor=self.actor,
                action="alert.enable" if enabled else "alert.disable",
                target_type="alert_rule",
                target_id=name,
                before={"enabled": not enabled},
                after={"enabled": enabled},
            )
        return rule

    async def history(
        self, tenant: str, name: str | None = None, firing_only: bool = False
    ) -> list[tuple[Rule, Instance]]:
        """Episodes, newest first, with their rules."""
        tenant_id = await tenancy.tenant_id(self.db, tenant)
        async with self.db.pool.acquire() as conn:
            rule_id = None
            if name is not None:
                rule = await alerts.get_rule(conn, tenant_id, name)
                if rule is None:
                    raise NotFound(f"no alert rule called {name!r}")
                rule_id = rule.id
            found = await alerts.instances(
                conn, tenant_id, rule_id=rule_id, firing_only=firing_only
            )
            rules = {r.id: r for r in await alerts.list_rules(conn, tenant_id)}
        return [(rules[i.rule_id], i) for i in found]

    async def acknowledge(self, tenant: str, instance_id: int, who: str) -> tuple[Rule, Instance]:
        """Stop re-notification of an episode; the firing messages say who acknowledged."""
        tenant_id = await tenancy.tenant_id(self.db, tenant)
        async with self.db.transaction() as conn:
            before = await alerts.get_instance(conn, tenant_id, instance_id)
            if before is None:
                raise NotFound(f"no alert with id {instance_id}")
            instance = await alerts.acknowledge(
                conn, tenant_id, instance_id, who, dt.datetime.now(dt.UTC)
            )
            assert instance is not None
            rule = await alerts.rule_by_id(conn, instance.rule_id)
            assert rule is not None
            await audit.record(
                conn,
                tenant_id=tenant_id,
                actor=who,
                action="alert.ack",
                target_type="alert_instance",
                target_id=str(instance_id),
                before={"acknowledged_by": before.acknowledged_by},
                after={"acknowledged_by": instance.acknowledged_by},
            )
        await self._refresh_messages(rule, instance, tenant)
        return rule, instance

    async def _refresh_messages(self, rule: Rule, instance: Instance, tenant: str) -> None:
        """Show the acknowledgement on every firing message the episode posted."""
        if self.senders is None:
            return
        updated = messages.firing(rule, instance, instance.metric_value)
        for sent in instance.notifications_sent:
            if sent.get("kind") != "firing" or not sent.get("message_id"):
                continue
            target = Target.parse(str(sent["target"]), tenant=tenant)
            try:
                await self.senders.get(target.platform).update(target, sent["message_id"], updated)
            except (DeliveryError, NotFound) as exc:
                logger.warning("could not update alert message in %s: %s", target, exc)

    async def on_ack_click(self, click: Click) -> ClickResult:
        """The Acknowledge button: who clicked is resolved like any message sender."""
        if not click.value.isdigit():
            raise UsageError(f"bad alert id {click.value!r}")
        who = IncomingMessage(
            platform=click.platform,
            user_id=click.user_id,
            conversation_id="",
            text="",
            is_direct=True,
            tenant=click.tenant,
            workspace_id=click.workspace_id,
            email=click.email,
            display_name=click.display_name,
            trusted_email=click.trusted_email,
        )
        _, user = await resolve_user(self.db, who, self.default_timezone)
        rule, instance = await self.acknowledge(click.tenant, int(click.value), user.email)
        return ClickResult(
            f"Acknowledged “{rule.name}” — no more reminders for this episode.",
            replace_with=messages.firing(rule, instance, instance.metric_value),
        )
