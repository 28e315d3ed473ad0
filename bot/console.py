"""The admin console's questions, platform-neutral (SPEC §3, §7): what people asked and what it
cost, what no document could answer, the documents, the audit log, schedules, alerts and the
directory — each narrowed to what the viewer may see, as `bot.roles` decides.

A super user sees everything; a department head their departments only; anyone else nothing
(`NotPermitted`). Changes go through the services that own them (`bot.documents`,
`bot.directory`, `bot.schedules`, `bot.alerts.rules`), which check again (or, for channel
clearances, after the check here) and write the audit log.
"""

from __future__ import annotations

import datetime as dt
import importlib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import PurePath, PureWindowsPath
from typing import Any

from bot import documents as lifecycle
from bot import roles, tenancy
from bot.directory import Directory, parse_departments
from bot.documents import NotPermitted
from bot.embeddings import Embedder
from bot.errors import NotFound, UsageError
from bot.ingest.parsers import is_supported
from bot.settings import Settings
from storage import channels, documents, users
from storage import console as queries
from storage.console import AuditEntry, Day, PersonIdentity, Unanswered
from storage.database import Database
from storage.documents import Document
from storage.schedules import ScheduleSummary

# Words too common to name a theme.
STOPWORDS = frozenset((
    "a", "about", "an", "and", "any", "are", "as", "at", "be", "can", "could", "do", "does",
    "for", "from", "get", "has", "have", "how", "i", "if", "in", "is", "it", "its", "me", "my",
    "of", "on", "or", "our", "should", "so", "than", "that", "the", "their", "there", "this",
    "to", "us", "was", "we", "what", "when", "where", "which", "who", "why", "will", "with",
    "would", "you", "your", "please", "tell", "know", "need",
))  # fmt: skip
WORD = re.compile(r"[a-zäöüß][a-zäöüß0-9-]{2,}")


@dataclass(frozen=True)
class Overview:
    days: list[Day]
    departments: list[str]  # what the viewer may filter by
    platforms: list[str]
    budget: Any | None  # bot.budgets' BudgetUsage, for a super user when budgets exist


@dataclass(frozen=True)
class Theme:
    """Unanswered questions that share a word; `word` None gathers the ones that share none."""

    word: str | None
    questions: list[Unanswered]


@dataclass(frozen=True)
class Person:
    user: users.User
    identities: list[PersonIdentity]


def keywords(text: str) -> set[str]:
    """The words of a question that could name its theme (lower case, no stop words, a
    plural's trailing s dropped so "badges" and "badge" meet)."""
    found = set()
    for word in WORD.findall(text.lower()):
        if word in STOPWORDS:
            continue
        found.add(word[:-1] if len(word) > 4 and word.endswith("s") else word)
    return found


def group_by_theme(questions: list[Unanswered]) -> list[Theme]:
    """Questions grouped by the word most of them share: each question joins the group of its
    most widespread keyword that at least two questions use; the rest are listed alone at the
    end. Simple and explainable: the theme is a word the askers actually used."""
    words = {q.query_id: keywords(q.question) for q in questions}
    counts = Counter(word for found in words.values() for word in found)
    groups: dict[str | None, list[Unanswered]] = {}
    for question in questions:
        shared = [w for w in words[question.query_id] if counts[w] >= 2]
        theme = min(shared, key=lambda w: (-counts[w], w), default=None)
        groups.setdefault(theme, []).append(question)
    ordered = sorted((w for w in groups if w is not None), key=lambda w: (-len(groups[w]), w))
    themes = [Theme(word, groups[word]) for word in ordered]
    if None in groups:
        themes.append(Theme(None, groups[None]))
    return themes


def scope(viewer: users.User, department: str | None = None) -> list[str] | None:
    """The departments a view shows: one asked for (if the viewer manages it), else all the
    viewer manages (None: all). NotPermitted for someone with no console."""
    if not roles.may_open_console(viewer):
        raise NotPermitted("the admin console is for super users and department heads")
    if department:
        if not roles.may_manage(viewer, department):
            raise NotPermitted(f"only a super user or the head of {department} may see it")
        return [department]
    managed = roles.managed_departments(viewer)
    return None if managed is None else sorted(managed)


def require_administrator(viewer: users.User, what: str) -> None:
    if not roles.may_administer(viewer):
        raise NotPermitted(f"only a super user may see {what}")


async def budget_usage(db: Database, settings: Settings | None, tenant: str) -> Any | None:
    """The organisation's LLM budget this month (`bot.budgets`), when this deskmate has budgets;
    looked up by name so the console works with or without them."""
    try:
        budgets = importlib.import_module("bot.budgets")
    except ModuleNotFoundError:
        return None
    if settings is None:
        return None
    return await budgets.Budgets(db, settings).usage(tenant)


class Console:
    """The console of one tenant on one database."""

    def __init__(self, db: Database, tenant: str, settings: Settings | None = None) -> None:
        """`settings`: for the budget on the overview (none without them)."""
        self.db = db
        self.tenant = tenant
        self.settings = settings

    async def _tenant_id(self) -> int:
        return await tenancy.tenant_id(self.db, self.tenant)

    async def viewer(self, user_id: int) -> users.User:
        async with self.db.pool.acquire() as conn:
            found = await users.get_by_id(conn, await self._tenant_id(), user_id)
        if found is None:
            raise NotFound(f"no user {user_id}")
        return found

    async def demo_viewer(self) -> users.User | None:
        """Who the console acts as on loopback: the longest-standing active super user."""
        async with self.db.pool.acquire() as conn:
            found = await queries.first_super_user(conn, await self._tenant_id())
        return None if found is None else await self.viewer(found)

    async def overview(
        self, viewer: users.User, *, department: str | None = None,
        platform: str | None = None, days: int = 30,
    ) -> Overview:  # fmt: skip
        """The last `days` days, for the departments the viewer may see."""
        departments = scope(viewer, department)
        since = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days - 1)
        async with self.db.pool.acquire() as conn:
            tenant_id = await self._tenant_id()
            found = await queries.days(conn, tenant_id, since, departments, platform or None)
            known = await queries.platforms(conn, tenant_id)
        usage = None
        if roles.may_administer(viewer):  # the organisation's spending is not a department's
            usage = await budget_usage(self.db, self.settings, self.tenant)
        return Overview(found, await self.departments(viewer), known, usage)

    async def departments(self, viewer: users.User) -> list[str]:
        """The departments the viewer manages (a super user: every one the directory, the
        documents or the clearances name)."""
        managed = roles.managed_departments(viewer)
        if managed is not None:
            return sorted(managed)
        async with self.db.pool.acquire() as conn:
            tenant_id = await self._tenant_id()
            names = {d.document.department for d in await documents.list_documents(conn, tenant_id)}
            for user in await users.list_users(conn, tenant_id):
                names.update(user.department_access, user.dept_head_for)
            names.update(c.department for c in await channels.list_clearances(conn, tenant_id))
        return sorted(names)

    async def unanswered(self, viewer: users.User, *, days: int = 30) -> list[Theme]:
        """The questions no document could ground, grouped by theme."""
        departments = scope(viewer)
        since = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days - 1)
        async with self.db.pool.acquire() as conn:
            found = await queries.unanswered(conn, await self._tenant_id(), since, departments)
        return group_by_theme(found)

    async def documents(self, viewer: users.User) -> list[documents.DocumentSummary]:
        """The documents of the departments the viewer manages."""
        departments = scope(viewer)
        async with self.db.pool.acquire() as conn:
            listed = await documents.list_documents(conn, await self._tenant_id())
        return [d for d in listed if departments is None or d.document.department in departments]

    async def audit(
        self, viewer: users.User, *, action: str | None = None, actor: str | None = None
    ) -> tuple[list[AuditEntry], list[str]]:
        """The audit log (super users only) and the actions it holds, for the filter."""
        require_administrator(viewer, "the audit log")
        async with self.db.pool.acquire() as conn:
            tenant_id = await self._tenant_id()
            entries = await queries.audit_entries(conn, tenant_id, action or None, actor or None)
            return entries, await queries.audit_actions(conn, tenant_id)

    async def people(self, viewer: users.User) -> tuple[list[Person], list[channels.Clearance]]:
        """The people the viewer may see, with their identities, and the channel clearances
        of the departments the viewer manages."""
        departments = scope(viewer)
        async with self.db.pool.acquire() as conn:
            tenant_id = await self._tenant_id()
            everyone = await users.list_users(conn, tenant_id)
            known = await queries.identities(conn, tenant_id)
            clearances = await channels.list_clearances(conn, tenant_id)
        people = [
            Person(u, [i for i in known if i.user_id == u.id])
            for u in everyone
            if roles.may_see_person(viewer, u)
        ]
        if departments is not None:
            clearances = [c for c in clearances if c.department in departments]
        return people, clearances

    def schedules_of(
        self, viewer: users.User, listed: list[ScheduleSummary]
    ) -> list[ScheduleSummary]:
        """A super user sees every schedule; anyone else the ones they created (only those
        may they pause, resume or run, as `bot.schedules` decides)."""
        scope(viewer)
        if roles.may_administer(viewer):
            return listed
        return [s for s in listed if s.schedule.created_by == viewer.email]

    async def clear_channel(
        self, viewer: users.User, platform: str, channel_id: str, department: str
    ) -> bool:
        """Clear a channel for a department's documents (audited as `channel.clear`); False
        when it already was. NotPermitted unless the viewer manages the department."""
        await self._may_clear(viewer, department)
        return await Directory(self.db, actor=viewer.email).map_channel(
            self.tenant, platform, channel_id, department
        )

    async def withdraw_clearance(
        self, viewer: users.User, platform: str, channel_id: str, department: str
    ) -> bool:
        """Withdraw a channel's clearance (audited as `channel.unclear`); False when there was
        none. NotPermitted unless the viewer manages the department."""
        await self._may_clear(viewer, department)
        return await Directory(self.db, actor=viewer.email).unmap_channel(
            self.tenant, platform, channel_id, department
        )

    async def _may_clear(self, viewer: users.User, department: str) -> None:
        scope(viewer)
        names = parse_departments(department)
        if len(names) != 1:
            raise UsageError("choose exactly one department")
        if viewer.tenant_id != await self._tenant_id():
            raise NotPermitted("you may not change another organisation's clearances")
        if not roles.may_manage(viewer, names[0]):
            raise NotPermitted(
                f"only a super user or the head of {names[0]} may change its channel clearances"
            )

    async def replace_document(
        self, viewer: users.User, embedder: Embedder, document_id: int, filename: str,
        data: bytes,
    ) -> Document:  # fmt: skip
        """A new version of a document from an uploaded file of a supported type (as for an
        upload); `bot.documents` checks that the viewer manages its department."""
        scope(viewer)
        name = PureWindowsPath(filename).name
        if not name or not is_supported(PurePath(name)):
            raise UsageError(f"{filename or 'the file'} is not a supported document (md, txt, "
                             "html, pdf, docx)")  # fmt: skip
        if not data:
            raise UsageError("the file is empty")
        return await lifecycle.replace_document(
            self.db, embedder, await self._tenant_id(), document_id, name, data,
            requester=viewer, actor=viewer.email,
        )  # fmt: skip
