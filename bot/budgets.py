"""Monthly LLM budgets of an organisation and of each person (issue 13), in tokens and/or US
dollars, counted over calendar months in UTC.

The defaults come from the settings (LLM_MONTHLY_BUDGET_*, LLM_USER_MONTHLY_BUDGET_*), overrides
from `deskmate budget set`. An answer asked when its organisation's or its asker's budget is used
up quotes the documents instead (bot/conversation.py); the alert metric `llm_budget_used_ratio`
warns before that.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from bot import tenancy
from bot.errors import NotFound
from bot.settings import Settings
from storage import audit, budgets, users
from storage.budgets import Limits
from storage.database import Database
from storage.users import User

__all__ = ["BudgetUsage", "Budgets", "Limits", "month_of"]

# The share of a budget at which the alert rules are meant to warn (`llm_budget_used_ratio`).
WARNING_RATIO = 0.8
EXHAUSTED_REASON = "This month's AI budget is used up, so I can't write an answer"
# While neither an organisation nor a person has any budget, answers look again only this
# often: most deployments set none, and their answers should not pay a query each for it.
# A budget set meanwhile (`deskmate budget set`) applies within this time.
UNLIMITED_RECHECK = dt.timedelta(seconds=60)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def month_of(moment: dt.datetime) -> dt.date:
    """The first day of the UTC calendar month of `moment`."""
    return moment.astimezone(dt.UTC).date().replace(day=1)


@dataclass(frozen=True)
class BudgetUsage:
    """One budget's month: the organisation's (user_id None) or one person's."""

    month: dt.date
    user_id: int | None
    tokens: int
    cost_usd: Decimal
    limits: Limits
    email: str | None = None

    @property
    def used_ratio(self) -> float | None:
        """The larger share used of the two limits; None without any limit."""
        shares = []
        if self.limits.tokens is not None:
            shares.append(self.tokens / self.limits.tokens)
        if self.limits.usd is not None:
            shares.append(float(self.cost_usd / self.limits.usd))
        return max(shares) if shares else None

    @property
    def exhausted(self) -> bool:
        ratio = self.used_ratio
        return ratio is not None and ratio >= 1.0

    @property
    def warning(self) -> bool:
        ratio = self.used_ratio
        return ratio is not None and ratio >= WARNING_RATIO


class Budgets:
    """Budgets on one database; the settings' defaults are stored at first use, where alert
    rules read them."""

    def __init__(
        self, db: Database, settings: Settings, *, clock: Callable[[], dt.datetime] = utc_now
    ) -> None:
        self.db = db
        self.clock = clock
        self.tenant_default = Limits(settings.llm_monthly_budget_usd,
                                     settings.llm_monthly_budget_tokens)  # fmt: skip
        self.user_default = Limits(settings.llm_user_monthly_budget_usd,
                                   settings.llm_user_monthly_budget_tokens)  # fmt: skip
        self._synced = False
        # (tenant id, user id) → when to look again at a person found without any budget.
        self._unlimited: dict[tuple[int, int], dt.datetime] = {}

    async def sync_defaults(self) -> None:
        async with self.db.pool.acquire() as conn:
            await budgets.sync_defaults(conn, self.tenant_default, self.user_default)
        self._synced = True

    async def usage(self, tenant: str | int, *, at: dt.datetime | None = None) -> BudgetUsage:
        """The organisation's budget this month (or the month of `at`): spent and limits."""
        tenant_id = await self._tenant_id(tenant)
        return (await self._spending(tenant_id, at, None))[0]

    async def people(
        self, tenant: str | int, *, at: dt.datetime | None = None
    ) -> list[BudgetUsage]:
        """Every person's budget who spent anything this month (or the month of `at`)."""
        tenant_id = await self._tenant_id(tenant)
        found = (await self._spending(tenant_id, at, None))[1:]
        async with self.db.pool.acquire() as conn:
            emails = {u.id: u.email for u in await users.list_users(conn, tenant_id)}
        return [_with_email(u, emails.get(u.user_id or 0)) for u in found]

    async def exhausted(self, tenant_id: int, user_id: int) -> BudgetUsage | None:
        """The budget that stops answers now, the organisation's first; None while both the
        organisation and the person have budget left."""
        key = (tenant_id, user_id)
        recheck = self._unlimited.get(key)
        if recheck is not None and self.clock() < recheck:
            return None
        found = await self._spending(tenant_id, None, user_id)
        if all(usage.limits == Limits() for usage in found):
            self._unlimited[key] = self.clock() + UNLIMITED_RECHECK
            return None
        self._unlimited.pop(key, None)
        return next((usage for usage in found if usage.exhausted), None)

    async def set(
        self, tenant: str, limits: Limits, *, email: str | None = None, actor: str
    ) -> None:
        """Override the default budget of the organisation, or of the person with `email`."""
        tenant_id = await tenancy.tenant_id(self.db, tenant)
        async with self.db.pool.acquire() as conn, conn.transaction():
            user_id = None
            if email is not None:
                user_id = _known(await users.get_by_email(conn, tenant_id, email), email)
            await budgets.set_override(conn, tenant_id, user_id, limits, updated_by=actor)
            await audit.record(
                conn, tenant_id=tenant_id, actor=actor, action="budget.set",
                target_type="budget", target_id=email or tenant, before=None,
                after={"usd": None if limits.usd is None else str(limits.usd),
                       "tokens": limits.tokens},
            )  # fmt: skip
        self._unlimited.clear()  # a budget set here applies to this process's next answer

    async def clear(self, tenant: str, *, email: str | None = None, actor: str) -> bool:
        """Back to the default budget; False when none was set."""
        tenant_id = await tenancy.tenant_id(self.db, tenant)
        async with self.db.pool.acquire() as conn, conn.transaction():
            user_id = None
            if email is not None:
                user_id = _known(await users.get_by_email(conn, tenant_id, email), email)
            cleared = await budgets.clear_override(conn, tenant_id, user_id)
            if cleared:
                await audit.record(
                    conn, tenant_id=tenant_id, actor=actor, action="budget.clear",
                    target_type="budget", target_id=email or tenant, before=None, after=None,
                )  # fmt: skip
        return cleared

    async def overrides(self, tenant: str) -> list[budgets.Override]:
        tenant_id = await tenancy.tenant_id(self.db, tenant)
        async with self.db.pool.acquire() as conn:
            return await budgets.overrides(conn, tenant_id)

    async def _tenant_id(self, tenant: str | int) -> int:
        return tenant if isinstance(tenant, int) else await tenancy.tenant_id(self.db, tenant)

    async def _spending(
        self, tenant_id: int, at: dt.datetime | None, user_id: int | None
    ) -> list[BudgetUsage]:
        if not self._synced:
            await self.sync_defaults()
        month = month_of(at or self.clock())
        async with self.db.pool.acquire() as conn:
            found = await budgets.spending(conn, tenant_id, month, user_id)
        return [BudgetUsage(month, s.user_id, s.tokens, s.cost_usd, s.limits) for s in found]


def _with_email(usage: BudgetUsage, email: str | None) -> BudgetUsage:
    return BudgetUsage(usage.month, usage.user_id, usage.tokens, usage.cost_usd, usage.limits,
                       email)  # fmt: skip


def _known(user: User | None, email: str) -> int:
    if user is None:
        raise NotFound(f"no user {email!r} in this organisation")
    return user.id
