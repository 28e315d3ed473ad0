"""Scheduled messages as admins and users manage them, the same from the CLI and from chat.

Every change is checked here (one-sentence `UsageError`s), made in one transaction and written
to `audit_log`. From a chat platform, pass the `requester`: a schedule then acts as them, and
only its creator or a super user may change it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from bot import tenancy
from bot.commands import parse_command
from bot.cron import CronError, next_slot, parse_cron, zone
from bot.digest import parse_scope
from bot.directory import PLATFORMS, check_email
from bot.errors import NotFound, UsageError
from bot.settings import TEAMS_PREFIX, Settings
from storage import audit, channels, jobs, schedules, tenants, users
from storage.database import Connection, Database
from storage.schedules import NewSchedule, Schedule

MAX_TEXT = 3000
WEB_CHANNEL = re.compile(r"^#[a-z0-9][a-z0-9_-]*$")
# What turns a platform on, for the sentence that refuses a schedule on one that is off.
TURN_ON = {
    "slack": "set SLACK_BOT_TOKEN (one workspace) or SLACK_CLIENT_ID (installable app)",
    "teams": f"set {TEAMS_PREFIX}CLIENTID",
}


def platforms_on(settings: Settings) -> tuple[str, ...]:
    """The platforms these settings let deskmate post to: the web chat always, Slack and Teams
    when their credentials are set."""
    on = {"web": True, "slack": settings.slack_enabled, "teams": settings.teams_enabled}
    return tuple(platform for platform in PLATFORMS if on[platform])


@dataclass(frozen=True)
class ScheduleRequest:
    """What someone asked for; exactly one of text/prompt/digest and one of at/cron."""

    platform: str
    channel: str
    text: str | None = None
    prompt: str | None = None
    digest: str | None = None  # "department:sales" or "channel:C123"
    at: str | None = None  # ISO 8601; without an offset it is read in `timezone`
    cron: str | None = None
    timezone: str | None = None
    run_as: str | None = None  # email of the person the schedule acts as


class Schedules:
    """Schedule management on one database, as `actor` (who the audit log names)."""

    def __init__(
        self, db: Database, *, actor: str, default_timezone: str = "UTC",
        public_departments: tuple[str, ...] | list[str] = ("general",),
        platforms: Collection[str] = ("web",),
    ) -> None:  # fmt: skip
        """`platforms`: those a new schedule may target, `platforms_on(settings)`; a schedule
        on any other would wait for a sender forever."""
        self.db = db
        self.actor = actor
        self.default_timezone = default_timezone
        self.public_departments = tuple(public_departments)
        self.platforms = frozenset(platforms)

    async def add(
        self, tenant: str, request: ScheduleRequest, *, requester: users.User | None = None
    ) -> Schedule:
        """Validate and create a schedule; its first slot is computed on the database clock."""
        tenant_id = await tenancy.tenant_id(self.db, tenant)
        async with self.db.transaction() as conn:
            now = await schedules.db_now(conn)
            new = await self._validated(conn, tenant_id, request, requester, now)
            schedule = await schedules.create(conn, tenant_id, new)
            await self._audit(conn, schedule, "schedule.add", None, schedule.as_dict())
        return schedule

    async def listing(
        self, tenant: str, *, include_deleted: bool = False
    ) -> list[schedules.ScheduleSummary]:
        tenant_id = await tenancy.tenant_id(self.db, tenant)
        async with self.db.pool.acquire() as conn:
            return await schedules.list_summaries(conn, tenant_id, include_deleted=include_deleted)

    async def pause(self, tenant: str, schedule_id: int, *, requester: users.User | None = None
                    ) -> Schedule:  # fmt: skip
        """Stop sending; runs not yet started are dropped."""
        return await self._change(tenant, schedule_id, "pause", requester)

    async def resume(self, tenant: str, schedule_id: int, *, requester: users.User | None = None
                     ) -> Schedule:  # fmt: skip
        """Send again from the next slot (a one-off whose time has passed is sent at once)."""
        return await self._change(tenant, schedule_id, "resume", requester)

    async def delete(self, tenant: str, schedule_id: int, *, requester: users.User | None = None
                     ) -> Schedule:  # fmt: skip
        """Stop for good; the row and its runs stay for the record and the failure metric."""
        return await self._change(tenant, schedule_id, "delete", requester)

    async def run_now(
        self, tenant: str, schedule_id: int, *, requester: users.User | None = None
    ) -> jobs.Run:
        """Queue one extra run, due at once (also while paused); the next tick delivers it."""
        tenant_id = await tenancy.tenant_id(self.db, tenant)
        async with self.db.transaction() as conn:
            schedule = await self._get(conn, tenant_id, schedule_id, requester)
            if schedule.status == "deleted":
                raise UsageError(f"schedule {schedule_id} is deleted")
            run = await jobs.add_manual_run(conn, tenant_id, schedule_id)
            await self._audit(conn, schedule, "schedule.run_now", None, {"run_id": run.id})
        return run

    async def runs(self, tenant: str, schedule_id: int, limit: int = 20) -> list[jobs.Run]:
        tenant_id = await tenancy.tenant_id(self.db, tenant)
        async with self.db.pool.acquire() as conn:
            await self._get(conn, tenant_id, schedule_id, None)
            return await jobs.runs_of(conn, tenant_id, schedule_id, limit)

    # --- internals ---------------------------------------------------------------------------

    async def _change(
        self, tenant: str, schedule_id: int, action: str, requester: users.User | None
    ) -> Schedule:
        tenant_id = await tenancy.tenant_id(self.db, tenant)
        async with self.db.transaction() as conn:
            before = await self._get(conn, tenant_id, schedule_id, requester, lock=True)
            status, next_run_at = _transition(before, action, await schedules.db_now(conn))
            after = await schedules.set_status(conn, tenant_id, schedule_id, status, next_run_at)
            assert after is not None
            if status in ("paused", "deleted"):
                await schedules.drop_pending_runs(conn, schedule_id)
            await self._audit(conn, after, f"schedule.{action}", before.as_dict(), after.as_dict())
        return after

    async def _get(
        self, conn: Connection, tenant_id: int, schedule_id: int,
        requester: users.User | None, *, lock: bool = False,
    ) -> Schedule:  # fmt: skip
        schedule = await schedules.get(conn, tenant_id, schedule_id, lock=lock)
        if schedule is None:
            raise NotFound(f"no schedule {schedule_id}")
        if requester is not None and not (
            requester.is_super_user or requester.email == schedule.created_by
        ):
            raise UsageError(f"schedule {schedule_id} belongs to {schedule.created_by}")
        return schedule

    async def _validated(
        self, conn: Connection, tenant_id: int, request: ScheduleRequest,
        requester: users.User | None, now: dt.datetime,
    ) -> NewSchedule:  # fmt: skip
        platform, channel = _target(request)
        kind, payload = _content(request)
        timezone = request.timezone or (requester.timezone if requester else None)
        timezone = timezone or self.default_timezone
        run_at, cron, next_run_at = _timing(request, timezone, now)
        run_as = await self._run_as(conn, tenant_id, request, requester, kind)
        if kind == "digest":
            await self._check_digest(conn, tenant_id, platform, channel, payload, requester)
        if platform not in self.platforms:
            raise UsageError(f"{platform} is not configured in this deskmate, so nothing would "
                             f"deliver this schedule: {TURN_ON[platform]}")  # fmt: skip
        return NewSchedule(platform=platform, channel=channel, kind=kind, payload=payload,
                           created_by=run_as or self.actor, run_at=run_at, cron=cron,
                           timezone=timezone, next_run_at=next_run_at)  # fmt: skip

    async def _run_as(
        self, conn: Connection, tenant_id: int, request: ScheduleRequest,
        requester: users.User | None, kind: str,
    ) -> str | None:  # fmt: skip
        email = check_email(request.run_as) if request.run_as else None
        if requester is not None:
            if email and email != requester.email and not requester.is_super_user:
                raise UsageError("only a super user may schedule messages as someone else")
            email = email or requester.email
        if email is None:
            if kind == "prompt":
                raise UsageError("a prompt schedule needs --as EMAIL: it is answered with that "
                                 "person's access to documents")  # fmt: skip
            return None
        user = await users.get_by_email(conn, tenant_id, email)
        if user is None or not user.is_active:
            raise UsageError(f"{email} is not an active user")
        return email

    async def _check_digest(
        self, conn: Connection, tenant_id: int, platform: str, channel: str,
        payload: dict[str, Any], requester: users.User | None,
    ) -> None:  # fmt: skip
        """A department digest quotes its people's questions: it may only go to a channel
        cleared for that department, and only its head or a super user may ask for one."""
        department = payload["name"] if payload["scope"] == "department" else None
        if department is None or department in self.public_departments:
            return
        if not await schedules.department_exists(conn, tenant_id, department):
            raise UsageError(f"unknown department {department!r}: no document, person or "
                             "channel belongs to it")  # fmt: skip
        if requester is not None and not (
            requester.is_super_user or department in requester.dept_head_for
        ):
            raise UsageError(
                f"only the head of {department} or a super user may schedule its digest"
            )
        cleared = department in await channels.departments_for_channel(
            conn, tenant_id, platform, channel
        )
        if not cleared:
            raise UsageError(f"{platform} channel {channel} is not cleared for {department}: "
                             "clear it with 'deskmate channels map' first")  # fmt: skip

    async def _audit(
        self, conn: Connection, schedule: Schedule, action: str,
        before: dict[str, Any] | None, after: dict[str, Any] | None,
    ) -> None:  # fmt: skip
        await audit.record(conn, tenant_id=schedule.tenant_id, actor=self.actor, action=action,
                           target_type="schedule", target_id=str(schedule.id), before=before,
                           after=after)  # fmt: skip


def _target(request: ScheduleRequest) -> tuple[str, str]:
    platform, channel = request.platform.strip().lower(), request.channel.strip()
    if platform not in PLATFORMS:
        raise UsageError(f"unknown platform {platform!r}: use one of {', '.join(PLATFORMS)}")
    if not channel or re.search(r"\s", channel):
        raise UsageError(f"{request.channel!r} is not a channel id")
    if platform == "web" and not WEB_CHANNEL.match(channel):
        raise UsageError(f"{channel!r} is not a web channel: use a name like #general")
    return platform, channel


def _content(request: ScheduleRequest) -> tuple[str, dict[str, Any]]:
    given = {k: v for k, v in (("text", request.text), ("prompt", request.prompt),
                               ("digest", request.digest)) if v is not None}  # fmt: skip
    if len(given) != 1:
        raise UsageError("give exactly one of --text, --prompt or --digest")
    kind, value = next(iter(given.items()))
    if kind == "digest":
        scope = parse_scope(value)
        return kind, {"scope": scope.kind, "name": scope.name}
    value = value.strip()
    if not value:
        raise UsageError(f"the {kind} is empty")
    if len(value) > MAX_TEXT:
        raise UsageError(f"the {kind} is longer than {MAX_TEXT} characters")
    if kind == "prompt" and parse_command(value) is not None:
        raise UsageError("a scheduled prompt must be a question, not a command like 'remember'")
    return kind, {kind: value}


def _timing(
    request: ScheduleRequest, timezone: str, now: dt.datetime
) -> tuple[dt.datetime | None, str | None, dt.datetime]:
    """(run_at, cron, first slot), or UsageError."""
    try:
        tz = zone(timezone)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if (request.at is None) == (request.cron is None):
        raise UsageError("give exactly one of --at (once) or --cron (recurring)")
    if request.cron is not None:
        cron = " ".join(request.cron.split())
        try:
            parse_cron(cron)
            return None, cron, next_slot(cron, timezone, now)
        except CronError as exc:
            raise UsageError(f"bad cron expression: {exc}") from None
    try:
        at = dt.datetime.fromisoformat(str(request.at).strip())
    except ValueError:
        raise UsageError(f"{request.at!r} is not an ISO time like 2026-03-10T09:00") from None
    at = at if at.tzinfo else at.replace(tzinfo=tz)
    if at <= now:
        raise UsageError(f"{request.at} is in the past")
    return at, None, at


def _transition(
    schedule: Schedule, action: str, now: dt.datetime
) -> tuple[str, dt.datetime | None]:
    """The status and next slot after pause / resume / delete, or UsageError."""
    allowed = {"pause": ("active",), "resume": ("paused", "failed"),
               "delete": ("active", "paused", "completed", "failed")}[action]  # fmt: skip
    if schedule.status not in allowed:
        raise UsageError(f"schedule {schedule.id} is {schedule.status}; it cannot {action}")
    if action == "pause":
        return "paused", None
    if action == "delete":
        return "deleted", None
    if schedule.cron is not None:
        return "active", next_slot(schedule.cron, schedule.timezone, now)
    assert schedule.run_at is not None
    return "active", max(schedule.run_at, now)


def describe_what(schedule: Schedule) -> str:
    """`text “…”`, `prompt “…”` or `digest department:sales`, for listings."""
    payload = schedule.payload
    if schedule.kind == "digest":
        return f"digest {payload['scope']}:{payload['name']}"
    body = str(payload.get(schedule.kind, ""))
    return f"{schedule.kind} “{body if len(body) <= 40 else body[:39] + '…'}”"


def describe_when(schedule: Schedule) -> str:
    """`cron '0 9 * * 1-5' Europe/Berlin` or `once 2026-03-10 09:00 CET`."""
    if schedule.cron is not None:
        return f"cron '{schedule.cron}' {schedule.timezone}"
    assert schedule.run_at is not None
    return f"once {local_time(schedule.run_at, schedule.timezone)}"


def local_time(at: dt.datetime | None, timezone: str) -> str:
    if at is None:
        return "-"
    return at.astimezone(zone(timezone)).strftime("%Y-%m-%d %H:%M %Z")


# --- the demo's digest -------------------------------------------------------------------------

DEMO_DIGEST = ScheduleRequest(platform="web", channel="#general", digest="department:general",
                              cron="0 17 * * 1-5", timezone="Europe/Paris")  # fmt: skip


async def ensure_demo_digest(
    db: Database, *, tenant: str = tenants.DEFAULT_TENANT, request: ScheduleRequest = DEMO_DIGEST
) -> Schedule:
    """The demo's weekday digest of the public `general` department into `web:#general`
    (17:00 Paris time); created once, so seeding the demo again changes nothing."""
    manager = Schedules(db, actor="demo")
    tenant_id = await tenancy.tenant_id(db, tenant)
    async with db.pool.acquire() as conn:
        now = await schedules.db_now(conn)
        wanted = await manager._validated(conn, tenant_id, request, None, now)
        existing = await schedules.find_same(conn, tenant_id, wanted)
    return existing or await manager.add(tenant, request)
