"""What alert notifications say: firing, reminder, resolved, evaluation error, acknowledged."""

from __future__ import annotations

import datetime as dt

from bot.alerts.engine import SYMBOLS
from bot.outbound import Action, Outbound
from storage.alerts import Instance, Rule

ACK = "alert.ack"
ICONS = {"info": "🔵", "warning": "🟠", "critical": "🔴"}


def format_value(value: float | None, metric: str) -> str:
    if value is None:
        return "no data"
    if metric.endswith("_rate"):
        return f"{value:.1%}"
    if metric.endswith("_usd"):
        return f"${value:,.2f}"
    if metric.endswith("_ms"):
        return f"{value:,.0f} ms"
    return f"{value:g}"


def _when(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _fields(rule: Rule, value: float | None, since: dt.datetime) -> tuple[tuple[str, str], ...]:
    return (
        ("Value", format_value(value, rule.metric_type)),
        (
            "Threshold",
            f"{SYMBOLS[rule.condition]} {format_value(rule.threshold, rule.metric_type)}",
        ),
        ("Window", f"{rule.window_minutes} min"),
        ("Since", _when(since)),
        ("Severity", rule.severity),
        ("Metric", rule.metric_type),
    )


def summary(rule: Rule, value: float | None) -> str:
    """One line: "LLM error rate is 12.0% (> 5.0%) over the last 15 min"."""
    return (
        f"{rule.name}: {rule.metric_type} is {format_value(value, rule.metric_type)} "
        f"({SYMBOLS[rule.condition]} {format_value(rule.threshold, rule.metric_type)}) "
        f"over the last {rule.window_minutes} min"
    )


def firing(
    rule: Rule,
    instance: Instance,
    value: float | None,
    *,
    reminder: bool = False,
    key: str | None = None,
) -> Outbound:
    icon = ICONS.get(rule.severity, "🟠")
    title = f"{icon} {'Still firing' if reminder else 'Firing'}: {rule.name}"
    text = summary(rule, value)
    if rule.description:
        text += f"\n{rule.description}"
    if instance.acknowledged_by:
        text += f"\n_Acknowledged by {instance.acknowledged_by}_"
        actions: tuple[Action, ...] = ()
    else:
        actions = (Action("Acknowledge", ACK, str(instance.id), style="primary"),)
    return Outbound(
        text=text,
        title=title,
        fields=_fields(rule, value, instance.started_at),
        actions=actions,
        idempotency_key=key,
    )


def resolved(
    rule: Rule, instance: Instance, value: float | None, now: dt.datetime, key: str | None = None
) -> Outbound:
    lasted = now - instance.started_at
    minutes = max(1, int(lasted.total_seconds() // 60))
    reason = "no data in the window" if value is None else summary(rule, value)
    return Outbound(
        text=f"Resolved after {minutes} min — {reason}.",
        title=f"✅ Resolved: {rule.name}",
        idempotency_key=key,
    )


def evaluation_error(rule: Rule, error: str, key: str | None = None) -> Outbound:
    return Outbound(
        text=f"deskmate could not evaluate this rule: {error}. It keeps trying every "
        f"{rule.evaluation_interval_seconds} s and will not repeat this message until it works.",
        title=f"⚠️ Alert rule failing: {rule.name}",
        idempotency_key=key,
    )
