"""The console's pages: read the request, ask the core, render. Each POST answers with a
redirect back to its page (so a reload does not repeat it)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web
from aiohttp.web_request import FileField

from bot import documents as lifecycle
from bot.alerts.rules import AlertRules
from bot.console import require_administrator, scope
from bot.directory import PLATFORMS
from bot.errors import NotFound, UsageError
from bot.schedules import Schedules, describe_what, describe_when, platforms_on
from handlers.console.access import CONSOLE, VIEWER, Viewer
from handlers.console.render import (
    bar_chart,
    button,
    csrf_field,
    e,
    meter,
    page,
    select,
    table,
    when,
)
from storage.channels import Clearance

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ACCEPTED = ".md,.txt,.html,.htm,.pdf,.docx"  # what an upload or a replace may be


def _show(request: web.Request, title: str, here: str, body: str) -> web.Response:
    viewer = request[VIEWER]
    role = "super user" if viewer.user.is_super_user else "department head"
    return page(title, here, body, who=f"{viewer.user.email} ({role})", csrf=viewer.csrf,
                signout=viewer.signed_in)  # fmt: skip


def _viewer(request: web.Request) -> Viewer:
    return request[VIEWER]


# --- overview -----------------------------------------------------------------------------------


async def overview(request: web.Request) -> web.StreamResponse:
    """Questions, outcomes, 👍/👎 and LLM use per day, filterable by department and platform."""
    viewer = _viewer(request)
    department = request.query.get("department") or None
    platform = request.query.get("platform") or None
    seen = await request.app[CONSOLE].console.overview(viewer.user, department=department,
                                                       platform=platform)  # fmt: skip
    days = [d.day for d in seen.days]
    everything = "all departments" if viewer.user.is_super_user else "all my departments"
    filters = (
        '<form method="get" action="/console">'
        f"{select('department', seen.departments, department, everything)} "
        f"{select('platform', seen.platforms, platform, 'all platforms')} "
        "<button>Show</button></form>"
    )
    charts = [
        bar_chart("Questions per day", days, [
            ("answered", "answered", [d.answered for d in seen.days]),
            ("unanswered", "unanswered", [d.unanswered for d in seen.days]),
            ("failed", "failed", [d.failed for d in seen.days]),
        ]),
        bar_chart("Feedback per day", days, [
            ("👍", "up", [d.thumbs_up for d in seen.days]),
            ("👎", "down", [d.thumbs_down for d in seen.days]),
        ]),
        bar_chart("LLM tokens per day", days,
                  [("tokens", "tokens", [d.tokens for d in seen.days])]),
        bar_chart("LLM cost per day (USD)", days,
                  [("USD", "cost", [d.cost_usd for d in seen.days])]),
    ]  # fmt: skip
    body = f"{filters}{_budget(seen.budget)}<div class=charts>{''.join(charts)}</div>"
    return _show(request, "Overview", "/console", body)


def _budget(usage: object | None) -> str:
    """The month's LLM budget: spent, the limits, a meter of the larger share used."""
    if usage is None:
        return ('<div class="slot">LLM budget: shown to super users when this deskmate keeps '
                "budgets.</div>")  # fmt: skip
    limits = getattr(usage, "limits", None)
    usd, tokens = getattr(limits, "usd", None), getattr(limits, "tokens", None)
    ratio = getattr(usage, "used_ratio", None)
    spent = (f"{e(getattr(usage, 'tokens', 0))} tokens, "
             f"{float(getattr(usage, 'cost_usd', 0)):.2f} USD")  # fmt: skip
    limit = " and ".join(
        f"{e(v)} {unit}" for v, unit in ((usd, "USD"), (tokens, "tokens")) if v is not None
    )
    of = f" of {limit} ({ratio:.0%})" if limit and ratio is not None else " (no limit set)"
    return f'<div class="slot">LLM budget this month: {spent}{of}{meter(ratio)}</div>'


# --- unanswered ---------------------------------------------------------------------------------


async def unanswered(request: web.Request) -> web.StreamResponse:
    """What people asked that no document could ground, grouped by a word they shared."""
    themes = await request.app[CONSOLE].console.unanswered(_viewer(request).user)
    parts = []
    for theme in themes:
        heading = f"“{theme.word}”" if theme.word else "Other questions"
        rows = [(e(q.question), f"{e(q.user_name or '—')} <span class=muted>{e(q.user_email)}"
                 "</span>", e(q.platform), e(when(q.asked_at)))
                for q in theme.questions]  # fmt: skip
        parts.append(f"<h2>{e(heading)} ({len(theme.questions)})</h2>"
                     + table(("Question", "Asked by", "Platform", "When"), rows, ""))  # fmt: skip
    intro = ('<p class="muted">Questions of the last 30 days that no document could ground, '
             "grouped by a word they share.</p>")  # fmt: skip
    body = intro + ("".join(parts) or '<p class="muted">Every question found a document.</p>')
    return _show(request, "Unanswered questions", "/console/unanswered", body)


# --- documents ----------------------------------------------------------------------------------


async def documents(request: web.Request) -> web.StreamResponse:
    """The documents of the viewer's departments, an upload form, delete buttons."""
    viewer = _viewer(request)
    state = request.app[CONSOLE]
    listed = await state.console.documents(viewer.user)
    rows = [(
        f'<a href="/console/documents/{s.document.id}">{e(s.document.title)}</a>',
        e(s.document.department), e(s.document.status), e(s.chunk_count),
        e(when(s.document.updated_at)),
        button(f"/console/documents/{s.document.id}/delete", "Delete", viewer.csrf, danger=True),
    ) for s in listed]  # fmt: skip
    departments = await state.console.departments(viewer.user)
    upload = (
        '<h2>Upload</h2><form method="post" action="/console/documents" '
        'enctype="multipart/form-data">'
        f'<input type="hidden" name="csrf_token" value="{e(viewer.csrf)}">'
        f"{select('department', departments, None, 'choose a department')} "
        f'<input type="file" name="file" accept="{ACCEPTED}"> '
        "<button>Upload</button></form>"
    )
    body = table(("Title", "Department", "Status", "Chunks", "Last ingested", ""), rows,
                 "No documents yet.") + upload  # fmt: skip
    return _show(request, "Documents", "/console/documents", body)


async def upload(request: web.Request) -> web.StreamResponse:
    viewer = _viewer(request)
    form = await request.post()
    file = form.get("file")
    department = form.get("department")
    if not isinstance(file, FileField) or not isinstance(department, str) or not department:
        raise UsageError("choose a department and a file to upload")
    runtime = request.app[CONSOLE].runtime
    assert runtime.embedder is not None
    await lifecycle.upload_document(
        runtime.db, runtime.embedder, await _tenant_id(request), department, file.filename,
        file.file.read(), requester=viewer.user, actor=viewer.user.email,
    )  # fmt: skip
    raise web.HTTPSeeOther("/console/documents")


async def delete(request: web.Request) -> web.StreamResponse:
    viewer = _viewer(request)
    await lifecycle.delete_document(
        request.app[CONSOLE].runtime.db, await _tenant_id(request), _id(request),
        requester=viewer.user, actor=viewer.user.email,
    )  # fmt: skip
    raise web.HTTPSeeOther("/console/documents")


async def replace(request: web.Request) -> web.StreamResponse:
    """A new version of the document from an uploaded file: same id, department and access."""
    viewer = _viewer(request)
    form = await request.post()
    file = form.get("file")
    if not isinstance(file, FileField):
        raise UsageError("choose a file to replace the document with")
    state = request.app[CONSOLE]
    assert state.runtime.embedder is not None
    document_id = _id(request)
    await state.console.replace_document(viewer.user, state.runtime.embedder, document_id,
                                         file.filename, file.file.read())  # fmt: skip
    raise web.HTTPSeeOther(f"/console/documents/{document_id}")


async def cited(request: web.Request) -> web.StreamResponse:
    """One document and the questions its passages answered."""
    viewer = _viewer(request)
    document, citations = await lifecycle.cited_by(
        request.app[CONSOLE].runtime.db, await _tenant_id(request), _id(request),
        requester=viewer.user,
    )  # fmt: skip
    rows = [(e(c.question or "—"), e(c.user_email or "—"), e(c.platform), e(c.status or "—"),
             e(when(c.answered_at))) for c in citations]  # fmt: skip
    facts = (f"<p>{e(document.department)} · {e(document.status)} · {e(document.source_path)}"
             f" · last ingested {e(when(document.updated_at))}</p>")  # fmt: skip
    replace = (
        f'<h2>Replace</h2><form method="post" action="/console/documents/{document.id}/replace" '
        'enctype="multipart/form-data">'
        f'<input type="hidden" name="csrf_token" value="{e(viewer.csrf)}">'
        f'<input type="file" name="file" accept="{ACCEPTED}"> '
        "<button>Replace</button></form>"
        '<p class="muted">The new file becomes this document\'s text: same document, department '
        "and access.</p>"
    )
    body = (
        facts
        + replace
        + "<h2>Questions that cited it</h2>"
        + table(
            ("Question", "Asked by", "Platform", "Answer", "When"), rows, "No answer cited it yet."
        )
    )
    return _show(request, document.title, "/console/documents", body)


# --- schedules and alerts -------------------------------------------------------------------


def _schedules(request: web.Request) -> Schedules:
    settings = request.app[CONSOLE].runtime.settings
    return Schedules(request.app[CONSOLE].runtime.db, actor=_viewer(request).user.email,
                     default_timezone=settings.default_timezone,
                     public_departments=settings.public_departments,
                     platforms=platforms_on(settings))  # fmt: skip


async def schedules(request: web.Request) -> web.StreamResponse:
    viewer = _viewer(request)
    state = request.app[CONSOLE]
    listed = state.console.schedules_of(viewer.user, await _schedules(request).listing(
        state.console.tenant))  # fmt: skip
    rows = []
    for s in listed:
        one = s.schedule
        toggle = "resume" if one.status == "paused" else "pause"
        actions = " ".join((
            button(f"/console/schedules/{one.id}/{toggle}", toggle.title(), viewer.csrf),
            button(f"/console/schedules/{one.id}/run", "Run now", viewer.csrf),
        ))  # fmt: skip
        rows.append((e(one.id), e(describe_what(one)), e(f"{one.platform}:{one.channel}"),
                     e(describe_when(one)), e(one.status), e(f"{s.sent} sent, {s.failed} failed"),
                     e(one.created_by), actions))  # fmt: skip
    body = table(("#", "What", "Where", "When", "Status", "Runs", "By", ""), rows,
                 "No schedules.")  # fmt: skip
    return _show(request, "Schedules", "/console/schedules", body)


async def change_schedule(request: web.Request) -> web.StreamResponse:
    viewer = _viewer(request)
    tenant = request.app[CONSOLE].console.tenant
    scope(viewer.user)
    service, action, schedule_id = _schedules(request), request.match_info["action"], _id(request)
    if action == "pause":
        await service.pause(tenant, schedule_id, requester=viewer.user)
    elif action == "resume":
        await service.resume(tenant, schedule_id, requester=viewer.user)
    elif action == "run":
        await service.run_now(tenant, schedule_id, requester=viewer.user)
    else:
        raise web.HTTPNotFound()
    raise web.HTTPSeeOther("/console/schedules")


def _alert_rules(request: web.Request) -> AlertRules:
    runtime = request.app[CONSOLE].runtime
    return AlertRules(runtime.db, runtime.senders, actor=_viewer(request).user.email,
                      default_timezone=runtime.settings.default_timezone,
                      platforms=platforms_on(runtime.settings))  # fmt: skip


async def alerts(request: web.Request) -> web.StreamResponse:
    """Alert rules (pause/resume) and their recent episodes (acknowledge); super users only."""
    viewer = _viewer(request)
    require_administrator(viewer.user, "alerts")
    service, tenant = _alert_rules(request), request.app[CONSOLE].console.tenant
    rules = [(e(r.name), e(f"{r.metric_type} {r.condition} {r.threshold:g}"), e(r.severity),
              e(r.state), e("on" if r.enabled else "paused"),
              button(f"/console/alerts/rules/{r.name}/{'pause' if r.enabled else 'resume'}",
                     "Pause" if r.enabled else "Resume", viewer.csrf))
             for r in await service.listing(tenant)]  # fmt: skip
    episodes = [(e(rule.name), e(i.state), e(when(i.started_at)), e(i.message),
                 e(i.acknowledged_by) if i.acknowledged_by
                 else button(f"/console/alerts/{i.id}/ack", "Acknowledge", viewer.csrf))
                for rule, i in await service.history(tenant)]  # fmt: skip
    body = ("<h2>Rules</h2>" + table(("Rule", "When", "Severity", "State", "", ""), rules,
                                     "No alert rules.")
            + "<h2>Episodes</h2>" + table(("Rule", "State", "Since", "Message", "Acknowledged"),
                                          episodes, "No alert has fired."))  # fmt: skip
    return _show(request, "Alerts", "/console/alerts", body)


async def acknowledge(request: web.Request) -> web.StreamResponse:
    viewer = _viewer(request)
    require_administrator(viewer.user, "alerts")
    await _alert_rules(request).acknowledge(request.app[CONSOLE].console.tenant, _id(request),
                                            viewer.user.email)  # fmt: skip
    raise web.HTTPSeeOther("/console/alerts")


async def toggle_rule(request: web.Request) -> web.StreamResponse:
    viewer = _viewer(request)
    require_administrator(viewer.user, "alerts")
    enabled = request.match_info["action"] == "resume"
    await _alert_rules(request).set_enabled(request.app[CONSOLE].console.tenant,
                                            request.match_info["name"], enabled)  # fmt: skip
    raise web.HTTPSeeOther("/console/alerts")


# --- people and audit ---------------------------------------------------------------------------


async def people(request: web.Request) -> web.StreamResponse:
    """The people the viewer may see, their identities, and the channel clearances of the
    departments the viewer manages (add one, remove one)."""
    viewer = _viewer(request)
    console = request.app[CONSOLE].console
    found, clearances = await console.people(viewer.user)
    rows = [(e(p.user.display_name), e(p.user.email), e(", ".join(p.user.department_access)),
             e(", ".join(p.user.dept_head_for)), e("yes" if p.user.is_super_user else ""),
             e("active" if p.user.is_active else "disabled"),
             e(", ".join(f"{i.platform}:{i.platform_user_id}" for i in p.identities)))
            for p in found]  # fmt: skip
    cleared = [(e(c.platform), e(c.channel_id), e(c.department), e(c.created_by or "—"),
                _withdraw_button(c, viewer.csrf)) for c in clearances]  # fmt: skip
    departments = await console.departments(viewer.user)
    add = (
        '<h3>Clear a channel</h3><form method="post" action="/console/clearances">'
        f"{csrf_field(viewer.csrf)}"
        f"{select('platform', PLATFORMS, None, 'choose a platform')} "
        '<input name="channel_id" placeholder="channel id, e.g. C0123 or #general" required> '
        f"{select('department', departments, None, 'choose a department')} "
        "<button>Clear</button></form>"
        '<p class="muted">Answers in a cleared channel may quote the department\'s documents '
        "to whoever there may read them.</p>"
    )
    body = (table(("Name", "Email", "Reads", "Heads", "Super user", "Status", "Identities"),
                  rows, "Nobody.")
            + "<h2>Channel clearances</h2>"
            + table(("Platform", "Channel", "Department", "Cleared by", ""), cleared,
                    "No channel is cleared.")
            + add)  # fmt: skip
    return _show(request, "People and clearances", "/console/people", body)


def _withdraw_button(clearance: Clearance, csrf: str) -> str:
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{e(value)}">'
        for name, value in (("platform", clearance.platform),
                            ("channel_id", clearance.channel_id),
                            ("department", clearance.department))
    )  # fmt: skip
    return (f'<form class="inline" method="post" action="/console/clearances/remove">'
            f'{csrf_field(csrf)}{hidden}<button class="danger">Remove</button></form>')  # fmt: skip


def _clearance_form(form: Mapping[str, object]) -> tuple[str, str, str]:
    values = [form.get(name) for name in ("platform", "channel_id", "department")]
    if not all(isinstance(v, str) and v.strip() for v in values):
        raise UsageError("choose a platform, a channel id and a department")
    platform, channel_id, department = (str(v).strip() for v in values)
    return platform, channel_id, department


async def add_clearance(request: web.Request) -> web.StreamResponse:
    viewer = _viewer(request)
    platform, channel_id, department = _clearance_form(await request.post())
    await request.app[CONSOLE].console.clear_channel(viewer.user, platform, channel_id,
                                                     department)  # fmt: skip
    raise web.HTTPSeeOther("/console/people")


async def remove_clearance(request: web.Request) -> web.StreamResponse:
    viewer = _viewer(request)
    platform, channel_id, department = _clearance_form(await request.post())
    console = request.app[CONSOLE].console
    removed = await console.withdraw_clearance(viewer.user, platform, channel_id, department)
    if not removed:
        raise NotFound(f"{platform} channel {channel_id} is not cleared for {department}")
    raise web.HTTPSeeOther("/console/people")


async def audit(request: web.Request) -> web.StreamResponse:
    action = request.query.get("action") or None
    actor = request.query.get("actor") or None
    entries, actions = await request.app[CONSOLE].console.audit(
        _viewer(request).user, action=action, actor=actor
    )
    filters = (f'<form method="get" action="/console/audit">{select("action", actions, action,
               "every action")} <input name="actor" placeholder="actor" value="{e(actor)}"> '
               "<button>Filter</button></form>")  # fmt: skip
    rows = [(e(when(a.at)), e(a.actor), e(a.action), e(f"{a.target_type} {a.target_id or ''}"),
             e(json.dumps(a.before) if a.before else ""),
             e(json.dumps(a.after) if a.after else "")) for a in entries]  # fmt: skip
    body = filters + table(("When", "Actor", "Action", "Target", "Before", "After"), rows,
                           "Nothing in the audit log matches.")  # fmt: skip
    return _show(request, "Audit log", "/console/audit", body)


# --- helpers ------------------------------------------------------------------------------------


def _id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit():
        raise web.HTTPNotFound()
    return int(raw)


async def _tenant_id(request: web.Request) -> int:
    from bot import tenancy

    return await tenancy.tenant_id(request.app[CONSOLE].runtime.db,
                                   request.app[CONSOLE].console.tenant)  # fmt: skip


ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/console", overview),
    ("GET", "/console/unanswered", unanswered),
    ("GET", "/console/documents", documents),
    ("POST", "/console/documents", upload),
    ("GET", "/console/documents/{id}", cited),
    ("POST", "/console/documents/{id}/delete", delete),
    ("POST", "/console/documents/{id}/replace", replace),
    ("GET", "/console/schedules", schedules),
    ("POST", "/console/schedules/{id}/{action}", change_schedule),
    ("GET", "/console/alerts", alerts),
    ("POST", "/console/alerts/{id}/ack", acknowledge),
    ("POST", "/console/alerts/rules/{name}/{action}", toggle_rule),
    ("GET", "/console/people", people),
    ("POST", "/console/clearances", add_clearance),
    ("POST", "/console/clearances/remove", remove_clearance),
    ("GET", "/console/audit", audit),
]
