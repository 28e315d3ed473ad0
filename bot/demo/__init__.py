"""The demo organisation `deskmate demo` seeds: Northwind Outfitters (SPEC §8).

Idempotent: users are upserted, clearances kept, unchanged handbooks skipped, memories deduplicated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.directory import Directory, NewUser
from bot.ingest.pipeline import IngestReport, ingest
from bot.runtime import Runtime
from bot.schedules import Schedules, ensure_demo_digest
from storage import meta, tenants
from storage.alerts import NewRule

DOCUMENTS = Path(__file__).parent / "documents"
DEPARTMENTS = ("general", "sales", "hr", "engineering")
SEEDED_KEY = "demo_seeded"


@dataclass(frozen=True)
class DemoUser:
    user: NewUser
    memories: tuple[str, ...] = ()


USERS = (
    DemoUser(
        NewUser(
            "alex.martin@northwind.example",
            ["sales"],
            ["sales"],
            display_name="Alex Martin",
            timezone="Europe/Paris",
        ),
        ("Leads the Lyon key-accounts sales team", "Prefers short answers with numbers"),
    ),
    DemoUser(
        NewUser(
            "hana.schmidt@northwind.example",
            ["hr"],
            ["hr"],
            display_name="Hana Schmidt",
            timezone="Europe/Berlin",
        ),
        ("Runs payroll and parental-leave requests for Germany",),
    ),
    DemoUser(
        NewUser(
            "eli.novak@northwind.example",
            ["engineering"],
            [],
            display_name="Eli Novak",
            timezone="Europe/Amsterdam",
        ),
        ("Is on the Harbor orders team and on call every fourth week",),
    ),
    DemoUser(
        NewUser(
            "sam.lee@northwind.example", [], [], display_name="Sam Lee", timezone="Europe/London"
        )
    ),
    DemoUser(
        NewUser(
            "robin.admin@northwind.example",
            [],
            [],
            is_super_user=True,
            display_name="Robin Admin",
            timezone="UTC",
        )
    ),
)

# Web chat channels and the departments they are cleared for (public ones need no clearance).
CHANNELS = (
    ("#sales", "sales"),
    ("#engineering", "engineering"),
    ("#hr-team", "hr"),
    ("#ops", "engineering"),
)
OPS = ("web:#ops",)
ALERT_RULES = (
    NewRule(
        "LLM errors",
        "llm_error_rate",
        "gt",
        0.1,
        window_minutes=15,
        for_minutes=5,
        severity="critical",
        notification_channels=OPS,
        description="Claude calls are failing: answers turn into apologies.",
    ),
    NewRule(
        "Slow answers",
        "response_time_p95_ms",
        "gt",
        8000,
        window_minutes=15,
        severity="warning",
        notification_channels=OPS,
    ),
    NewRule(
        "Unanswered questions",
        "no_answer_rate",
        "gt",
        0.5,
        window_minutes=60,
        severity="info",
        notification_channels=OPS,
        description="More than half the questions found no document: time to write some?",
    ),
    NewRule(
        "Daily model cost",
        "llm_cost_usd",
        "gt",
        20,
        window_minutes=1440,
        evaluation_interval_seconds=300,
        severity="warning",
        notification_channels=OPS,
    ),
    NewRule(
        "Delivery failures",
        "delivery_failures",
        "gt",
        0,
        window_minutes=60,
        severity="warning",
        notification_channels=OPS,
    ),
)


async def seed(runtime: Runtime, *, tenant: str = tenants.DEFAULT_TENANT) -> list[IngestReport]:
    """Create or refresh the demo organisation; returns the ingestion report per department."""
    directory = Directory(runtime.db, actor="demo", default_timezone="UTC")
    for demo in USERS:
        user, _ = await directory.add_user(tenant, demo.user)
        for fact in demo.memories:
            await runtime.conversation.memories.remember(user.tenant_id, user.id, fact)
    for channel, department in CHANNELS:
        await directory.map_channel(tenant, "web", channel, department)
    assert runtime.embedder is not None
    reports = [
        await ingest(
            runtime.db,
            runtime.embedder,
            tenant,
            [DOCUMENTS / department],
            department,
            actor="demo",
            progress=False,
        )
        for department in DEPARTMENTS
    ]
    await _alert_rules(runtime, tenant)
    digest = await ensure_demo_digest(runtime.db, tenant=tenant)
    if not await already_seeded(runtime):
        # A first digest right away, so a newcomer sees one in #general when the service runs.
        await Schedules(runtime.db, actor="demo").run_now(tenant, digest.id)
    async with runtime.db.pool.acquire() as conn:
        await meta.set_value(conn, SEEDED_KEY, "true")
    return reports


async def _alert_rules(runtime: Runtime, tenant: str) -> None:
    existing = {rule.name for rule in await runtime.alert_rules.listing(tenant)}
    for rule in ALERT_RULES:
        if rule.name not in existing:
            await runtime.alert_rules.add(tenant, rule)


async def already_seeded(runtime: Runtime) -> bool:
    async with runtime.db.pool.acquire() as conn:
        return await meta.get_value(conn, SEEDED_KEY) == "true"
