"""Evaluating due alert rules and notifying their channels (SPEC §6).

State changes are committed before anything is posted, so replicas agree on them exactly once;
posting follows. A firing notification that did not get out (crash, platform outage) is sent
again at the rule's next evaluation, so an alert never goes silent; idempotency keys let a
platform that can tell (Slack) recognise a post that did get out before the crash.

Rules on built-in metrics are evaluated a batch at a time: one statement measures the whole
batch, one writes its evaluations, states and episodes. A custom_sql rule runs alone, in its
sandbox (storage/alert_metrics.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from bot import metrics, tenancy
from bot.alerts import notices as messages
from bot.alerts.engine import Decision, Notify, decide
from bot.errors import NotFound
from bot.outbound import Delivery, DeliveryError, Outbound, Sender, Senders, Target
from storage import alert_metrics, alerts
from storage.alert_metrics import CustomSQLError
from storage.alerts import Instance, Rule
from storage.database import Database

logger = logging.getLogger("deskmate.alerts")

Clock = Callable[[], dt.datetime]
BATCH = 500


def replica_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AlertEvaluator:
    """Claims the rules due now and evaluates each once; safe on every replica at once."""

    def __init__(
        self,
        db: Database,
        senders: Senders,
        *,
        clock: Clock = utc_now,
        replica: str | None = None,
        batch: int = BATCH,
    ) -> None:
        self.db = db
        self.senders = senders
        self.clock = clock
        self.replica = replica or replica_name()
        self.batch = batch

    async def run_due(self) -> int:
        """Evaluate every rule due now; returns how many were evaluated."""
        now = self.clock()
        evaluated = 0
        while True:
            async with self.db.pool.acquire() as conn:  # one statement: its own transaction
                claimed = await alerts.claim_due(conn, now, self.batch)
            await self._evaluate_builtin(
                [(r, slot) for r, slot in claimed if r.metric_type != "custom_sql"], now
            )
            for rule, slot in claimed:
                if rule.metric_type == "custom_sql":
                    await self.evaluate(rule, slot, now)
            evaluated += len(claimed)
            if len(claimed) < self.batch:
                return evaluated

    async def _evaluate_builtin(
        self, claimed: list[tuple[Rule, dt.datetime]], now: dt.datetime
    ) -> None:
        """Measure, decide and record a batch of built-in rules, then notify."""
        if not claimed:
            return
        windows = [_window(rule, now) for rule, _ in claimed]
        async with self.db.pool.acquire() as conn:
            values = await alert_metrics.builtin_metrics(conn, windows)
            opened = await alerts.open_instances(conn, [rule.id for rule, _ in claimed])
        batch, decisions = [], []
        for (rule, slot), window in zip(claimed, windows, strict=True):
            value, instance = values[window], opened.get(rule.id)
            decision = _decide(rule, value, instance, now)
            batch.append(_evaluation(rule, slot, value, decision, instance))
            decisions.append(decision)
        async with self.db.pool.acquire() as conn:
            recorded = await alerts.record_evaluations(conn, batch, now, self.replica)
        for item, decision in zip(batch, decisions, strict=True):
            rule = item.rule
            if rule.id not in recorded:
                continue  # this interval was already evaluated elsewhere
            metrics.ALERT_EVALUATIONS.labels(outcome=decision.outcome).inc()
            started = recorded[rule.id]
            instance = started or opened.get(rule.id)
            if item.start_message is not None and started is None:
                instance = None  # another writer opened the episode meanwhile: it notifies
            await self._notify(rule, decision, instance, item.value, now)

    async def evaluate(self, rule: Rule, slot: dt.datetime, now: dt.datetime) -> None:
        try:
            value = await self._measure(rule, now)
        except CustomSQLError as exc:
            await self._failed(rule, slot, now, str(exc))
            return
        async with self.db.transaction() as conn:
            instance = await alerts.open_instance(conn, rule.id)
            decision = _decide(rule, value, instance, now)
            if not await alerts.record_evaluation(
                conn, rule, slot, now, value, decision.outcome, None, self.replica
            ):
                return  # this interval was already evaluated elsewhere
            instance = await self._apply(conn, rule, decision, instance, value, now)
        metrics.ALERT_EVALUATIONS.labels(outcome=decision.outcome).inc()
        await self._notify(rule, decision, instance, value, now)

    async def _measure(self, rule: Rule, now: dt.datetime) -> float | None:
        start = now - dt.timedelta(minutes=rule.window_minutes)
        if rule.metric_type == "custom_sql":
            # Its own connection, never the pool's: the pool does not run an admin's SQL.
            return await alert_metrics.custom_metric(
                self.db, rule.custom_sql or "", rule.tenant_id, start, now
            )
        async with self.db.pool.acquire() as conn:
            return await alert_metrics.builtin_metric(
                conn, rule.metric_type, rule.tenant_id, start, now
            )

    async def _apply(
        self,
        conn: Any,
        rule: Rule,
        decision: Decision,
        instance: Instance | None,
        value: float | None,
        now: dt.datetime,
    ) -> Instance | None:
        if decision.notify is Notify.FIRING and instance is None:
            instance = await alerts.start_instance(
                conn, rule, now, value, messages.summary(rule, value)
            )
        elif decision.notify is Notify.RESOLVED and instance is not None:
            await alerts.resolve_instance(conn, instance.id, now)
        await alerts.save_rule_state(
            conn,
            rule.id,
            state=decision.state,
            pending_since=decision.pending_since,
            now=now,
            value=value,
            triggered=decision.notify is Notify.FIRING,
            error=None,
            error_reported=False,
        )
        return instance

    async def _notify(
        self,
        rule: Rule,
        decision: Decision,
        instance: Instance | None,
        value: float | None,
        now: dt.datetime,
    ) -> None:
        if instance is None:
            return
        sent: list[dict[str, Any]] = []
        if decision.notify is Notify.RESOLVED:
            sent = await self._follow_up(
                rule,
                instance,
                "resolved",
                now,
                lambda key: messages.resolved(rule, instance, value, now, key),
            )
        elif decision.state == "firing":
            sent = await self._send_missing_firing(rule, instance, value, now)
            if decision.notify is Notify.REMINDER and not sent:
                sent = await self._follow_up(
                    rule,
                    instance,
                    "reminder",
                    now,
                    lambda key: messages.firing(rule, instance, value, reminder=True, key=key),
                )
        if sent:
            async with self.db.pool.acquire() as conn:
                await alerts.add_notifications(conn, instance.id, sent, now)

    async def _send_missing_firing(
        self, rule: Rule, instance: Instance, value: float | None, now: dt.datetime
    ) -> list[dict[str, Any]]:
        done = {
            n["target"]
            for n in instance.notifications_sent
            if n.get("kind") == "firing" and n.get("message_id")
        }
        # An episode older than this evaluation whose post is missing: a crash or outage hit it
        # earlier, so ask the platform first whether the post got out after all.
        retry = instance.started_at < now
        sent = []
        for channel in rule.notification_channels:
            if channel in done:
                continue
            key = f"alert:{instance.id}:firing:{channel}"
            message = messages.firing(rule, instance, value, key=key)
            sent.append(await self._post(rule, channel, None, message, "firing", now, retry))
        return sent

    async def _follow_up(
        self,
        rule: Rule,
        instance: Instance,
        kind: str,
        now: dt.datetime,
        build: Callable[[str], Outbound],
    ) -> list[dict[str, Any]]:
        """Post into the thread of each channel's firing message (or the channel itself)."""
        firsts = {
            n["target"]: n
            for n in instance.notifications_sent
            if n.get("kind") == "firing" and n.get("message_id")
        }
        count = sum(1 for n in instance.notifications_sent if n.get("kind") == kind)
        sent = []
        for channel in rule.notification_channels:
            thread = (firsts.get(channel) or {}).get("thread")
            key = f"alert:{instance.id}:{kind}:{count}:{channel}"
            sent.append(await self._post(rule, channel, thread, build(key), kind, now))
        return sent

    async def _post(
        self,
        rule: Rule,
        channel: str,
        thread: str | None,
        message: Outbound,
        kind: str,
        now: dt.datetime,
        retry: bool = False,
    ) -> dict[str, Any]:
        record: dict[str, Any] = {"target": channel, "kind": kind, "at": now.isoformat()}
        try:
            target = Target.parse(channel)
            target = Target(target.platform, target.channel, thread, tenant=await self._slug(rule))
            sender = self.senders.get(target.platform)
            delivery = None
            if retry and message.idempotency_key:
                delivery = await _find(sender, target, message.idempotency_key)
            delivery = delivery or await sender.post(target, message)
        except (DeliveryError, NotFound, ValueError) as exc:
            logger.warning("alert %s: could not notify %s: %s", rule.name, channel, exc)
            return record | {"error": str(exc)}
        return record | {"message_id": delivery.message_id, "thread": delivery.thread}

    async def _slug(self, rule: Rule) -> str:
        return await tenancy.slug_of(self.db, rule.tenant_id)

    async def _failed(self, rule: Rule, slot: dt.datetime, now: dt.datetime, error: str) -> None:
        """An evaluation that could not run: recorded every time, reported once per episode."""
        report = rule.error_reported_at is None
        async with self.db.transaction() as conn:
            if not await alerts.record_evaluation(
                conn, rule, slot, now, None, "error", error, self.replica
            ):
                return
            await alerts.save_rule_state(
                conn,
                rule.id,
                state=rule.state,
                pending_since=rule.pending_since,
                now=now,
                value=None,
                triggered=False,
                error=error,
                error_reported=report,
            )
        metrics.ALERT_EVALUATIONS.labels(outcome="error").inc()
        if report:
            key = f"alert-error:{rule.id}:{slot.isoformat()}"
            for channel in rule.notification_channels:
                await self._post(
                    rule, channel, None, messages.evaluation_error(rule, error, key), "error", now
                )


async def _find(sender: Sender, target: Target, key: str) -> Delivery | None:
    """Ask the platform whether an earlier attempt already posted this; never fail on it."""
    try:
        return await sender.find(target, key)
    except DeliveryError:
        return None


def _window(rule: Rule, now: dt.datetime) -> alert_metrics.Window:
    return alert_metrics.Window(
        rule.metric_type, rule.tenant_id, now - dt.timedelta(minutes=rule.window_minutes), now
    )


def _decide(
    rule: Rule, value: float | None, instance: Instance | None, now: dt.datetime
) -> Decision:
    return decide(
        state=rule.state,
        pending_since=rule.pending_since,
        value=value,
        condition=rule.condition,
        threshold=rule.threshold,
        for_minutes=rule.for_minutes,
        now=now,
        last_notified_at=instance.last_notified_at if instance else None,
        acknowledged=bool(instance and instance.acknowledged_by),
        cooldown_minutes=rule.cooldown_minutes,
    )


def _evaluation(
    rule: Rule,
    slot: dt.datetime,
    value: float | None,
    decision: Decision,
    instance: Instance | None,
) -> alerts.Evaluation:
    """What the batch writes for one rule: the same changes `_apply` makes one rule at a time."""
    starts = decision.notify is Notify.FIRING and instance is None
    resolves = decision.notify is Notify.RESOLVED and instance is not None
    return alerts.Evaluation(
        rule=rule,
        slot=slot,
        value=value,
        outcome=decision.outcome,
        state=decision.state,
        pending_since=decision.pending_since,
        start_message=messages.summary(rule, value) if starts else None,
        resolve=instance.id if resolves and instance is not None else None,
    )
