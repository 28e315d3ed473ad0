"""The demo organisation `deskmate demo` seeds: Northwind Outfitters (SPEC §8).

Idempotent: users are upserted, clearances kept, unchanged handbooks skipped, memories deduplicated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.directory import Directory, NewUser
from bot.ingest.pipeline import IngestReport, ingest
from bot.runtime import Runtime
from storage import meta, tenants

DOCUMENTS = Path(__file__).parent / "documents"
DEPARTMENTS = ("general", "sales", "hr", "engineering")
SEEDED_KEY = "demo_seeded"


@dataclass(frozen=True)
class DemoUser:
    user: NewUser
    memories: tuple[str, ...] = ()


USERS = (
    DemoUser(NewUser("alex.martin@northwind.example", ["sales"], ["sales"],
                     display_name="Alex Martin", timezone="Europe/Paris"),
             ("Leads the Lyon key-accounts sales team", "Prefers short answers with numbers")),
    DemoUser(NewUser("hana.schmidt@northwind.example", ["hr"], ["hr"],
                     display_name="Hana Schmidt", timezone="Europe/Berlin"),
             ("Runs payroll and parental-leave requests for Germany",)),
    DemoUser(NewUser("eli.novak@northwind.example", ["engineering"], [],
                     display_name="Eli Novak", timezone="Europe/Amsterdam"),
             ("Is on the Harbor orders team and on call every fourth week",)),
    DemoUser(NewUser("sam.lee@northwind.example", [], [], display_name="Sam Lee",
                     timezone="Europe/London")),
    DemoUser(NewUser("robin.admin@northwind.example", [], [], is_super_user=True,
                     display_name="Robin Admin", timezone="UTC")),
)  # fmt: skip

# Web chat channels and the departments they are cleared for (public ones need no clearance).
CHANNELS = (("#sales", "sales"), ("#engineering", "engineering"), ("#hr-team", "hr"))


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
        await ingest(runtime.db, runtime.embedder, tenant, [DOCUMENTS / department], department,
                     actor="demo", progress=False)
        for department in DEPARTMENTS
    ]  # fmt: skip
    async with runtime.db.pool.acquire() as conn:
        await meta.set_value(conn, SEEDED_KEY, "true")
    return reports


async def already_seeded(runtime: Runtime) -> bool:
    async with runtime.db.pool.acquire() as conn:
        return await meta.get_value(conn, SEEDED_KEY) == "true"
