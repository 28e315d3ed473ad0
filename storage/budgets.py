"""Monthly LLM budgets: the defaults, the overrides of a tenant or a person, and what a month
has spent (migration 0018 keeps it as an aggregate the calls add to)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import asyncpg


@dataclass(frozen=True)
class Limits:
    """A budget's limits; None is no limit of that kind."""

    usd: Decimal | None = None
    tokens: int | None = None


@dataclass(frozen=True)
class Spending:
    """One budget's month: user_id None is the whole organisation."""

    user_id: int | None
    tokens: int
    cost_usd: Decimal
    limits: Limits


@dataclass(frozen=True)
class Override:
    """A budget set for a tenant (user_id None) or one person."""

    user_id: int | None
    email: str | None
    limits: Limits
    updated_by: str | None
    updated_at: dt.datetime


_SYNC_DEFAULTS = """
    INSERT INTO llm_budget_defaults (tenant_usd, tenant_tokens, user_usd, user_tokens)
    VALUES ($1, $2, $3, $4)
    ON CONFLICT (only_one) DO UPDATE
    SET tenant_usd = excluded.tenant_usd, tenant_tokens = excluded.tenant_tokens,
        user_usd = excluded.user_usd, user_tokens = excluded.user_tokens, updated_at = now()
    WHERE (llm_budget_defaults.tenant_usd, llm_budget_defaults.tenant_tokens,
           llm_budget_defaults.user_usd, llm_budget_defaults.user_tokens)
          IS DISTINCT FROM (excluded.tenant_usd, excluded.tenant_tokens,
                            excluded.user_usd, excluded.user_tokens)
"""


async def sync_defaults(conn: asyncpg.Connection, tenant: Limits, user: Limits) -> None:
    """Store the settings' default budgets, where alert rules can see them."""
    await conn.execute(_SYNC_DEFAULTS, tenant.usd, tenant.tokens, user.usd, user.tokens)


async def spending(
    conn: asyncpg.Connection, tenant_id: int, month: dt.date, user_id: int | None = None
) -> list[Spending]:
    """The tenant's budget first, then the person's (`user_id`) or, without one, every person's
    who spent anything in `month`."""
    rows = await conn.fetch(
        "SELECT * FROM llm_budget_spending($1, $2, $3) ORDER BY user_id", tenant_id, month, user_id
    )
    return [
        Spending(
            user_id=row["user_id"] or None,
            tokens=row["tokens"],
            cost_usd=row["cost_usd"],
            limits=Limits(row["limit_usd"], row["limit_tokens"]),
        )
        for row in rows
    ]


async def set_override(
    conn: asyncpg.Connection,
    tenant_id: int,
    user_id: int | None,
    limits: Limits,
    *,
    updated_by: str | None,
) -> None:
    await conn.execute(
        """
        INSERT INTO llm_budgets (tenant_id, user_id, monthly_usd, monthly_tokens, updated_by)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (tenant_id, (coalesce(user_id, 0))) DO UPDATE
        SET monthly_usd = excluded.monthly_usd, monthly_tokens = excluded.monthly_tokens,
            updated_by = excluded.updated_by, updated_at = now()
        """,
        tenant_id, user_id, limits.usd, limits.tokens, updated_by,
    )  # fmt: skip


async def clear_override(conn: asyncpg.Connection, tenant_id: int, user_id: int | None) -> bool:
    """Back to the default budget; False when there was no override."""
    status = await conn.execute(
        "DELETE FROM llm_budgets WHERE tenant_id = $1 AND coalesce(user_id, 0) = coalesce($2, 0)",
        tenant_id, user_id,
    )  # fmt: skip
    return bool(status != "DELETE 0")


async def overrides(conn: asyncpg.Connection, tenant_id: int) -> list[Override]:
    rows = await conn.fetch(
        """
        SELECT b.user_id, u.email, b.monthly_usd, b.monthly_tokens, b.updated_by, b.updated_at
        FROM llm_budgets b LEFT JOIN users u ON u.id = b.user_id
        WHERE b.tenant_id = $1
        ORDER BY b.user_id NULLS FIRST, u.email
        """,
        tenant_id,
    )
    return [
        Override(
            user_id=row["user_id"],
            email=row["email"],
            limits=Limits(row["monthly_usd"], row["monthly_tokens"]),
            updated_by=row["updated_by"],
            updated_at=row["updated_at"],
        )
        for row in rows
    ]
