"""HTML for the console: plain strings, every value escaped, charts drawn here as inline SVG
(no script, no library, nothing fetched)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from html import escape

from aiohttp import web

# No script at all; styles from our own file; forms post back here only.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
SECTIONS = (
    ("/console", "Overview"),
    ("/console/unanswered", "Unanswered"),
    ("/console/documents", "Documents"),
    ("/console/schedules", "Schedules"),
    ("/console/alerts", "Alerts"),
    ("/console/people", "People"),
    ("/console/audit", "Audit log"),
)


def e(value: object) -> str:
    return escape("" if value is None else str(value))


def when(at: dt.datetime | None) -> str:
    return "—" if at is None else at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def page(
    title: str, here: str, body: str, *, who: str, csrf: str, signout: bool, status: int = 200
) -> web.Response:
    """A whole console page."""
    nav = "".join(
        f'<a href="{path}"{" class=here" if path == here else ""}>{name}</a>'
        for path, name in SECTIONS
    )
    out = (f'<form method="post" action="/signout">{csrf_field(csrf)}'
           "<button>Sign out</button></form>") if signout else ""  # fmt: skip
    document = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>deskmate console · {e(title)}</title>"
        '<link rel="stylesheet" href="/console/static/console.css"></head><body>'
        f'<header><strong>deskmate console</strong>{nav}<span class="who">{e(who)}</span>'
        f"{out}</header><main><h1>{e(title)}</h1>{body}</main></body></html>\n"
    )
    return web.Response(text=document, status=status, content_type="text/html",
                        headers=PAGE_HEADERS)  # fmt: skip


def csrf_field(token: str) -> str:
    return f'<input type="hidden" name="csrf_token" value="{e(token)}">'


def button(action: str, label: str, csrf: str, *, danger: bool = False) -> str:
    """A one-button form that POSTs to `action`."""
    cls = ' class="danger"' if danger else ""
    return (f'<form class="inline" method="post" action="{e(action)}">{csrf_field(csrf)}'
            f"<button{cls}>{e(label)}</button></form>")  # fmt: skip


def table(headings: Sequence[str], rows: Iterable[Sequence[str]], empty: str) -> str:
    """A table of already-escaped cells, or a line saying there is nothing."""
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not body:
        return f'<p class="muted">{e(empty)}</p>'
    head = "".join(f"<th>{e(h)}</th>" for h in headings)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def select(name: str, choices: Sequence[str], chosen: str | None, everything: str) -> str:
    options = [f'<option value="">{e(everything)}</option>'] + [
        f'<option value="{e(c)}"{" selected" if c == chosen else ""}>{e(c)}</option>'
        for c in choices
    ]
    return f'<select name="{e(name)}">{"".join(options)}</select>'


# --- charts -------------------------------------------------------------------------------------

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 520, 180, 44, 22, 8
Series = tuple[str, str, Sequence[float]]  # label, css class, one value per day


def bar_chart(caption: str, days: Sequence[dt.date], series: Sequence[Series]) -> str:
    """Stacked bars, one per day, with a y axis of the largest stack and a legend."""
    top = max((sum(s[2][i] for s in series) for i in range(len(days))), default=0) or 1
    plot_w, plot_h = WIDTH - LEFT - 4, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(len(days), 1)
    bars = []
    for i, day in enumerate(days):
        base = 0.0
        for label, cls, values in series:
            value = values[i]
            if value <= 0:
                continue
            height = value / top * plot_h
            y = TOP + plot_h - (base + height)
            bars.append(
                f'<rect class="{cls}" x="{LEFT + i * slot + 1:.1f}" y="{y:.1f}" '
                f'width="{max(slot - 2, 1):.1f}" height="{height:.1f}">'
                f"<title>{e(day.isoformat())}: {e(_number(value))} {e(label)}</title></rect>"
            )
            base += height
    labels = [
        f'<text x="{LEFT + i * slot + slot / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
        f"{day.strftime('%d %b')}</text>"
        for i, day in enumerate(days)
        if i % max(len(days) // 6, 1) == 0
    ]
    axis = (
        f'<text x="{LEFT - 4}" y="{TOP + 8}" text-anchor="end">{e(_number(top))}</text>'
        f'<text x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end">0</text>'
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - 4}" y2="{TOP + plot_h}" '
        'stroke="#a0aec0"/>'
    )
    legend = "".join(
        f'<span><i class="swatch {cls}"></i>{e(label)}: {e(_number(sum(values)))}</span>'
        for label, cls, values in series
    )
    return (
        f"<figure><figcaption>{e(caption)}</figcaption>"
        f'<svg role="img" aria-label="{e(caption)}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="100%" xmlns="http://www.w3.org/2000/svg">{axis}{"".join(bars)}'
        f'{"".join(labels)}</svg><div class="legend">{legend}</div></figure>'
    )


def meter(ratio: float | None) -> str:
    """A bar of the share of a budget used (full and red at 100 %), or nothing without one."""
    if ratio is None:
        return ""
    width = min(max(ratio, 0.0), 1.0) * 300
    cls = "failed" if ratio >= 1 else "unanswered" if ratio >= 0.8 else "answered"
    return (f'<svg role="img" aria-label="{ratio:.0%} used" viewBox="0 0 300 12" width="300" '
            'height="12" xmlns="http://www.w3.org/2000/svg">'
            '<rect class="track" width="300" height="12"/>'
            f'<rect class="{cls}" width="{width:.1f}" height="12"/></svg>')  # fmt: skip


def _number(value: float) -> str:
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.4f}".rstrip("0")
