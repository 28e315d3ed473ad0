"""Alert rules, their firing episodes (instances) and their evaluations."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import asyncpg

_RULE_FIELDS = (
    "id",
    "tenant_id",
    "name",
    "description",
    "metric_type",
    "condition",
    "threshold",
    "window_minutes",
    "evaluation_interval_seconds",
    "for_minutes",
    "custom_sql",
    "severity",
    "notification_channels",
    "cooldown_minutes",
    "enabled",
    "state",
    "pending_since",
    "next_evaluation_at",
    "last_evaluated_at",
    "last_value",
    "last_triggered_at",
    "last_error",
    "error_reported_at",
    "created_by",
)
_RULE_COLUMNS = ", ".join(_RULE_FIELDS)
_INSTANCE_COLUMNS = """
    id, tenant_id, rule_id, state, started_at, resolved_at, metric_value, threshold, message,
    notifications_sent, last_notified_at, acknowledged_by, acknowledged_at
"""


@dataclass(frozen=True)
class Rule:
    id: int
    tenant_id: int
    name: str
    description: str | None
    metric_type: str
    condition: str
    threshold: float
    window_minutes: int
    evaluation_interval_seconds: int
    for_minutes: int
    custom_sql: str | None
    severity: str
    notification_channels: list[str]
    cooldown_minutes: int
    enabled: bool
    state: str
    pending_since: dt.datetime | None
    next_evaluation_at: dt.datetime
    last_evaluated_at: dt.datetime | None
    last_value: float | None
    last_triggered_at: dt.datetime | None
    last_error: str | None
    error_reported_at: dt.datetime | None
    created_by: str | None


@dataclass(frozen=True)
class Instance:
    id: int
    tenant_id: int
    rule_id: int
    state: str
    started_at: dt.datetime
    resolved_at: dt.datetime | None
    metric_value: float | None
    threshold: float
    message: str
    notifications_sent: list[dict[str, Any]]
    last_notified_at: dt.datetime | None
    acknowledged_by: str | None
    acknowledged_at: dt.datetime | None


@dataclass(frozen=True)
class NewRule:
    name: str
    metric_type: str
    condition: str
    threshold: float
    window_minutes: int = 15
    evaluation_interval_seconds: int = 60
    for_minutes: int = 0
    custom_sql: str | None = None
    severity: str = "warning"
    notification_channels: tuple[str, ...] = ()
    cooldown_minutes: int = 60
    description: str | None = None
    created_by: str | None = None


def _rule(row: asyncpg.Record | dict[str, Any]) -> Rule:
    return Rule(**dict(row))


def _instance(row: asyncpg.Record) -> Instance:
    return Instance(**dict(row))


async def add_rule(
    conn: asyncpg.Connection, tenant_id: int, new: NewRule, now: dt.datetime
) -> Rule:
    row = await conn.fetchrow(
        f"""
        INSERT INTO alert_rules (tenant_id, name, description, metric_type, condition, threshold,
            window_minutes, evaluation_interval_seconds, for_minutes, custom_sql, severity,
            notification_channels, cooldown_minutes, created_by, next_evaluation_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
        RETURNING {_RULE_COLUMNS}
        """,
        tenant_id,
        new.name,
        new.description,
        new.metric_type,
        new.condition,
        new.threshold,
        new.window_minutes,
        new.evaluation_interval_seconds,
        new.for_minutes,
        new.custom_sql,
        new.severity,
        list(new.notification_channels),
        new.cooldown_minutes,
        new.created_by,
        now,
    )
    return _rule(row)


async def get_rule(conn: asyncpg.Connection, tenant_id: int, name: str) -> Rule | None:
    row = await conn.fetchrow(
        f"SELECT {_RULE_COLUMNS} FROM alert_rules WHERE tenant_id = $1 AND name = $2",
        tenant_id,
        name,
    )
    return _rule(row) if row else None


async def list_rules(conn: asyncpg.Connection, tenant_id: int) -> list[Rule]:
    rows = await conn.fetch(
        f"SELECT {_RULE_COLUMNS} FROM alert_rules WHERE tenant_id = $1 ORDER BY name", tenant_id
    )
    return [_rule(r) for r in rows]


async def set_enabled(
    conn: asyncpg.Connection, tenant_id: int, name: str, enabled: bool
) -> Rule | None:
    """Enable or disable a rule; a disabled rule forgets any pending state."""
    row = await conn.fetchrow(
        f"""
        UPDATE alert_rules SET enabled = $3, updated_at = now(),
            state = CASE WHEN $3 THEN state ELSE
                        CASE WHEN state = 'firing' THEN 'firing' ELSE 'ok' END END,
            pending_since = CASE WHEN $3 THEN pending_since ELSE NULL END
        WHERE tenant_id = $1 AND name = $2
        RETURNING {_RULE_COLUMNS}
        """,
        tenant_id,
        name,
        enabled,
    )
    return _rule(row) if row else None


async def claim_due(
    conn: asyncpg.Connection, now: dt.datetime, limit: int
) -> list[tuple[Rule, dt.datetime]]:
    """Rules due at `now`, each with the slot (start of the current interval) it is evaluated for.

    Moving `next_evaluation_at` to the next interval in the claiming statement, over rows locked
    with SKIP LOCKED, gives each rule's interval to exactly one replica; late replicas find
    nothing due. After downtime the missed intervals are skipped, not replayed in a burst."""
    rows = await conn.fetch(
        f"""
        WITH due AS (
            SELECT id, next_evaluation_at + make_interval(secs => evaluation_interval_seconds
                       * floor(extract(epoch FROM $1 - next_evaluation_at)
                               / evaluation_interval_seconds)) AS slot
            FROM alert_rules
            WHERE enabled AND next_evaluation_at <= $1
            ORDER BY next_evaluation_at
            FOR UPDATE SKIP LOCKED
            LIMIT $2
        )
        UPDATE alert_rules r
        SET next_evaluation_at = due.slot + make_interval(secs => r.evaluation_interval_seconds)
        FROM due WHERE r.id = due.id
        RETURNING {", ".join(f"r.{name}" for name in _RULE_FIELDS)}, due.slot
        """,
        now,
        limit,
    )
    return [(_rule(_without(r, "slot")), r["slot"]) for r in rows]


def _without(row: asyncpg.Record, key: str) -> dict[str, Any]:
    return {k: v for k, v in dict(row).items() if k != key}


async def record_evaluation(
    conn: asyncpg.Connection,
    rule: Rule,
    slot: dt.datetime,
    now: dt.datetime,
    value: float | None,
    outcome: str,
    error: str | None,
    replica: str,
) -> bool:
    """One row per rule and slot; False when this slot was already evaluated."""
    inserted = await conn.fetchval(
        """
        INSERT INTO alert_evaluations (tenant_id, rule_id, slot, evaluated_at, value, outcome,
                                       error, replica)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT (rule_id, slot) DO NOTHING RETURNING true
        """,
        rule.tenant_id,
        rule.id,
        slot,
        now,
        value,
        outcome,
        error,
        replica,
    )
    return bool(inserted)


async def save_rule_state(
    conn: asyncpg.Connection,
    rule_id: int,
    *,
    state: str,
    pending_since: dt.datetime | None,
    now: dt.datetime,
    value: float | None,
    triggered: bool,
    error: str | None,
    error_reported: bool,
) -> None:
    await conn.execute(
        """
        UPDATE alert_rules SET state = $2, pending_since = $3, last_evaluated_at = $4,
            last_value = $5,
            last_triggered_at = CASE WHEN $6::boolean THEN $4 ELSE last_triggered_at END,
            last_error = $7::text,
            error_reported_at = CASE WHEN $7::text IS NULL THEN NULL
                                     WHEN $8::boolean THEN $4 ELSE error_reported_at END
        WHERE id = $1
        """,
        rule_id,
        state,
        pending_since,
        now,
        value,
        triggered,
        error,
        error_reported,
    )


async def open_instance(conn: asyncpg.Connection, rule_id: int) -> Instance | None:
    row = await conn.fetchrow(
        f"SELECT {_INSTANCE_COLUMNS} FROM alert_instances WHERE rule_id = $1 AND state = 'firing'",
        rule_id,
    )
    return _instance(row) if row else None


async def get_instance(
    conn: asyncpg.Connection, tenant_id: int, instance_id: int
) -> Instance | None:
    row = await conn.fetchrow(
        f"SELECT {_INSTANCE_COLUMNS} FROM alert_instances WHERE tenant_id = $1 AND id = $2",
        tenant_id,
        instance_id,
    )
    return _instance(row) if row else None


async def start_instance(
    conn: asyncpg.Connection, rule: Rule, now: dt.datetime, value: float | None, message: str
) -> Instance:
    row = await conn.fetchrow(
        f"""
        INSERT INTO alert_instances (tenant_id, rule_id, started_at, metric_value, threshold,
                                     message)
        VALUES ($1, $2, $3, $4, $5, $6)
        RETURNING {_INSTANCE_COLUMNS}
        """,
        rule.tenant_id,
        rule.id,
        now,
        value,
        rule.threshold,
        message,
    )
    return _instance(row)


async def resolve_instance(conn: asyncpg.Connection, instance_id: int, now: dt.datetime) -> None:
    await conn.execute(
        "UPDATE alert_instances SET state = 'resolved', resolved_at = $2 WHERE id = $1",
        instance_id,
        now,
    )


async def add_notifications(
    conn: asyncpg.Connection, instance_id: int, sent: list[dict[str, Any]], now: dt.datetime
) -> None:
    """Append deliveries to the instance; only firing notifications reset the cooldown clock."""
    await conn.execute(
        """
        UPDATE alert_instances
        SET notifications_sent = notifications_sent || $2::jsonb,
            last_notified_at = CASE WHEN $4 THEN $3 ELSE last_notified_at END
        WHERE id = $1
        """,
        instance_id,
        sent,
        now,
        any(item.get("kind") in ("firing", "reminder") for item in sent),
    )


async def acknowledge(
    conn: asyncpg.Connection, tenant_id: int, instance_id: int, who: str, now: dt.datetime
) -> Instance | None:
    """Record the first acknowledgement of an episode; later ones keep the first."""
    row = await conn.fetchrow(
        f"""
        UPDATE alert_instances
        SET acknowledged_by = coalesce(acknowledged_by, $3),
            acknowledged_at = coalesce(acknowledged_at, $4)
        WHERE tenant_id = $1 AND id = $2
        RETURNING {_INSTANCE_COLUMNS}
        """,
        tenant_id,
        instance_id,
        who,
        now,
    )
    return _instance(row) if row else None


async def rule_by_id(conn: asyncpg.Connection, rule_id: int) -> Rule | None:
    row = await conn.fetchrow(f"SELECT {_RULE_COLUMNS} FROM alert_rules WHERE id = $1", rule_id)
    return _rule(row) if row else None


async def instances(
    conn: asyncpg.Connection,
    tenant_id: int,
    *,
    rule_id: int | None = None,
    firing_only: bool = False,
    limit: int = 50,
) -> list[Instance]:
    rows = await conn.fetch(
        f"""
        SELECT {_INSTANCE_COLUMNS} FROM alert_instances
        WHERE tenant_id = $1 AND ($2::bigint IS NULL OR rule_id = $2)
          AND (NOT $3 OR state = 'firing')
        ORDER BY started_at DESC, id DESC LIMIT $4
        """,
        tenant_id,
        rule_id,
        firing_only,
        limit,
    )
    return [_instance(r) for r in rows]


# --- evaluating built-in rules in batches -------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    """One rule's evaluation as decided, to be written with the rest of its batch."""

    rule: Rule
    slot: dt.datetime
    value: float | None
    outcome: str
    state: str  # the rule's state after it
    pending_since: dt.datetime | None
    start_message: str | None  # set: the evaluation starts a firing episode with this message
    resolve: int | None  # the open episode it resolves


async def open_instances(conn: asyncpg.Connection, rule_ids: list[int]) -> dict[int, Instance]:
    """The open (firing) episode of each of the rules that has one."""
    rows = await conn.fetch(
        f"""
        SELECT {_INSTANCE_COLUMNS} FROM alert_instances
        WHERE rule_id = ANY($1::bigint[]) AND state = 'firing'
        """,
        rule_ids,
    )
    return {row["rule_id"]: _instance(row) for row in rows}


async def record_evaluations(
    conn: asyncpg.Connection, batch: list[Evaluation], now: dt.datetime, replica: str
) -> dict[int, Instance | None]:
    """Write a batch of evaluations in one statement: the evaluation rows, the rules' new
    states, the episodes started and resolved. Only evaluations whose (rule, slot) was not
    recorded before take effect, as in `record_evaluation`; returns those, by rule id, each
    with the episode it started. An episode another writer opened meanwhile is left as it is."""
    if not batch:
        return {}
    rows = await conn.fetch(
        f"""
        WITH e AS (
            SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[], $4::float8[],
                                 $5::text[], $6::text[], $7::timestamptz[], $8::text[],
                                 $9::float8[], $10::bigint[])
                AS e (rule_id, tenant_id, slot, value, outcome, state, pending_since,
                      start_message, threshold, resolve)
        ), recorded AS (
            INSERT INTO alert_evaluations (tenant_id, rule_id, slot, evaluated_at, value,
                                           outcome, replica)
            SELECT tenant_id, rule_id, slot, $11, value, outcome, $12 FROM e
            ON CONFLICT (rule_id, slot) DO NOTHING
            RETURNING rule_id
        ), saved AS (
            UPDATE alert_rules r
            SET state = e.state, pending_since = e.pending_since, last_evaluated_at = $11,
                last_value = e.value,
                last_triggered_at = CASE WHEN e.start_message IS NOT NULL THEN $11
                                         ELSE r.last_triggered_at END,
                last_error = NULL, error_reported_at = NULL
            FROM e JOIN recorded USING (rule_id)
            WHERE r.id = e.rule_id
        ), resolved AS (
            UPDATE alert_instances i SET state = 'resolved', resolved_at = $11
            FROM e JOIN recorded USING (rule_id)
            WHERE i.id = e.resolve AND i.state = 'firing'
        ), started AS (
            INSERT INTO alert_instances (tenant_id, rule_id, started_at, metric_value, threshold,
                                         message)
            SELECT e.tenant_id, e.rule_id, $11, e.value, e.threshold, e.start_message
            FROM e JOIN recorded USING (rule_id)
            WHERE e.start_message IS NOT NULL
            ON CONFLICT (rule_id) WHERE state = 'firing' DO NOTHING
            RETURNING {_INSTANCE_COLUMNS}
        )
        SELECT recorded.rule_id AS recorded_rule, started.*
        FROM recorded LEFT JOIN started ON started.rule_id = recorded.rule_id
        """,
        [v.rule.id for v in batch], [v.rule.tenant_id for v in batch],
        [v.slot for v in batch], [v.value for v in batch], [v.outcome for v in batch],
        [v.state for v in batch], [v.pending_since for v in batch],
        [v.start_message for v in batch], [v.rule.threshold for v in batch],
        [v.resolve for v in batch], now, replica,
    )  # fmt: skip
    return {
        row["recorded_rule"]: Instance(**_without(row, "recorded_rule")) if row["id"] else None
        for row in rows
    }
