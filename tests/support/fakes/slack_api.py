"""A local fake of Slack's Web API (`SLACK_API_URL`): records every call, answers like Slack.

`FakeSlack.calls` holds (method, token, body) in arrival order; `rate_limit(method, n)` makes
the next n calls of a method answer HTTP 429 with `Retry-After`; `fail(method, error)` makes the
next call answer `{"ok": false, "error": …}`. With `keep_history=True` channels keep what is
posted (with wall-clock `ts`, as Slack's), `chatter` adds other people's messages, and
`conversations.history` / `conversations.replies` page through them like Slack: newest first
(a thread's replies oldest first), `oldest`/`latest` bounds, `limit`, `cursor`. Kept messages
follow what happens to them as Slack's do: a stream grows with each append and takes its
metadata when it stops, chat.update replaces the text (and the metadata, when it brings one),
chat.delete removes the message.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web


@dataclass(frozen=True)
class Call:
    method: str
    token: str | None
    body: dict[str, Any]


@dataclass
class FakeSlack:
    """State of the fake: users it knows, calls it saw, failures it was told to make."""

    bot_user_id: str = "UBOT"
    team_id: str = "T1"
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    url: str = ""
    delay: float = 0.0  # seconds before answering any call
    # Tokens of OAuth-installed workspaces: token → team id (auth.test answers accordingly).
    workspace_tokens: dict[str, str] = field(default_factory=dict)
    _rate_limits: dict[str, list[float]] = field(default_factory=dict)
    _failures: dict[str, list[str]] = field(default_factory=dict)
    _ts: itertools.count = field(default_factory=lambda: itertools.count(1))
    keep_history: bool = False
    # channel → its messages, oldest first (only with keep_history)
    history: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _last_stamp: float = 0.0

    # --- scripting ---------------------------------------------------------------------------

    def add_user(self, user_id: str, email: str, name: str = "", bot: bool = False) -> None:
        self.users[user_id] = {
            "id": user_id, "team_id": self.team_id, "name": name or email.split("@")[0],
            "is_bot": bot, "real_name": name or email,
            "profile": {"email": email, "real_name": name or email,
                        "display_name": name or email.split("@")[0]},
        }  # fmt: skip

    def rate_limit(self, method: str, times: int = 1, retry_after: float = 1) -> None:
        self._rate_limits.setdefault(method, []).extend([retry_after] * times)

    def fail(self, method: str, error: str, times: int = 1) -> None:
        self._failures.setdefault(method, []).extend([error] * times)

    def chatter(
        self, channel: str, count: int, user: str = "U-PEOPLE", *, thread: str | None = None
    ) -> None:
        """`count` messages from people in the channel (or replies in its `thread`), posted
        now (needs keep_history)."""
        for number in range(count):
            message = {"ts": self._stamp(), "user": user, "text": f"chatter {number}"}
            self._keep(channel, message | ({"thread_ts": thread} if thread else {}))

    def _stamp(self) -> str:
        """A message ts: wall-clock seconds, strictly increasing, as Slack's are."""
        if not self.keep_history:
            return f"1700000{next(self._ts):03d}.000100"
        self._last_stamp = max(time.time(), self._last_stamp + 0.000001)
        return f"{self._last_stamp:.6f}"

    def _keep(self, channel: str, message: dict[str, Any]) -> None:
        if self.keep_history:
            self.history.setdefault(channel, []).append(message)

    def _kept(self, channel: str, ts: Any) -> dict[str, Any] | None:
        return next((m for m in self.history.get(channel, []) if m["ts"] == ts), None)

    def _follow(self, method: str, body: dict[str, Any], ts: str) -> None:
        """What a call does to the channel's kept messages (with keep_history)."""
        channel = str(body.get("channel"))
        if method == "chat.startStream":
            thread = body.get("thread_ts") or ts
            stream = {"ts": ts, "user": self.bot_user_id, "bot_id": "BBOT",
                      "text": _stream_text(body), "thread_ts": thread}  # fmt: skip
            self._keep(channel, stream)
            return
        kept = self._kept(channel, body.get("ts"))
        if kept is None:
            return
        if method in ("chat.appendStream", "chat.stopStream"):
            kept["text"] += _stream_text(body)
        elif method == "chat.update":
            kept["text"] = body.get("text", "")
        elif method == "chat.delete":
            self.history[channel].remove(kept)
        if method in ("chat.stopStream", "chat.update") and body.get("metadata"):
            kept["metadata"] = body["metadata"]

    def _page(self, body: dict[str, Any], thread: str | None) -> dict[str, Any]:
        """conversations.history (thread None) or conversations.replies, one page of it."""
        messages = self.history.get(str(body.get("channel")), [])
        if thread is None:
            found = [m for m in reversed(messages) if m.get("thread_ts", m["ts"]) == m["ts"]]
        else:
            found = [m for m in messages if m.get("thread_ts", m["ts"]) == thread]
        oldest, latest = float(body.get("oldest") or 0), float(body.get("latest") or "inf")
        found = [m for m in found if oldest < float(m["ts"]) <= latest]
        start = int(body.get("cursor") or 0)
        limit = int(body.get("limit") or 100)
        page, more = found[start : start + limit], start + limit < len(found)
        metadata = {"next_cursor": str(start + limit) if more else ""}
        return {"messages": page, "has_more": more, "response_metadata": metadata}

    def _installation(self, code: str) -> dict[str, Any]:
        """oauth.v2.access: the code names the workspace (code "beta" installs T-BETA)."""
        team = f"T-{code.upper()}"
        token = f"xoxb-{team}"
        self.workspace_tokens[token] = team
        return {
            "access_token": token,
            "token_type": "bot",
            "scope": "chat:write,commands",
            "bot_user_id": self.bot_user_id,
            "app_id": "A1",
            "team": {"id": team, "name": f"Workspace {team}"},
            "enterprise": None,
            "is_enterprise_install": False,
            "authed_user": {"id": "U-INSTALLER"},
        }

    # --- reading what happened ------------------------------------------------------------------

    def called(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def posted_texts(self) -> list[str]:
        """Texts of chat.postMessage / chat.update / stream calls, in order."""
        texts = []
        for call in self.calls:
            if call.method in ("chat.postMessage", "chat.update", "chat.postEphemeral"):
                texts.append(str(call.body.get("text", "")))
            elif call.method in ("chat.startStream", "chat.appendStream", "chat.stopStream"):
                chunks = call.body.get("chunks") or []
                texts.append(
                    str(call.body.get("markdown_text", ""))
                    + "".join(
                        str(c.get("text", "")) for c in chunks if c.get("type") == "markdown_text"
                    )
                )
        return texts

    def markdown_blocks(self, method: str) -> list[list[str]]:
        """For each call of `method`, the texts of its `markdown` blocks (standard Markdown,
        which Slack renders itself)."""
        return [
            [b["text"] for b in call.body.get("blocks") or [] if b.get("type") == "markdown"]
            for call in self.called(method)
        ]

    # --- the server --------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/{method}", self._handle)
        app.router.add_get("/api/{method}", self._handle)  # users.info and other reads
        app.router.add_post("/response_url/{id}", self._response_url)
        return app

    async def _response_url(self, request: web.Request) -> web.Response:
        self.calls.append(Call(f"response_url:{request.match_info['id']}", None,
                               await request.json()))  # fmt: skip
        return web.Response(text="ok")

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body = await _body(request)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth else body.get("token")
        self.calls.append(Call(method, token, body))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self._rate_limits.get(method):
            retry_after = self._rate_limits[method].pop(0)
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                     headers={"Retry-After": str(int(retry_after))})  # fmt: skip
        if self._failures.get(method):
            return web.json_response({"ok": False, "error": self._failures[method].pop(0)})
        return web.json_response({"ok": True, **self._answer(method, body, token)})

    def _answer(self, method: str, body: dict[str, Any], token: str | None) -> dict[str, Any]:
        ts = self._stamp()
        if method == "chat.postMessage":
            kept = {"ts": ts, "user": self.bot_user_id, "bot_id": "BBOT",
                    "text": body.get("text", ""), "metadata": body.get("metadata")}  # fmt: skip
            if body.get("thread_ts"):
                kept["thread_ts"] = body["thread_ts"]
            self._keep(str(body.get("channel")), kept)
        elif self.keep_history:
            self._follow(method, body, ts)
        if self.keep_history and method in ("conversations.history", "conversations.replies"):
            thread = str(body["ts"]) if method == "conversations.replies" else None
            return self._page(body, thread)
        match method:
            case "auth.test":
                return {
                    "user_id": self.bot_user_id,
                    "team_id": self.workspace_tokens.get(token or "", self.team_id),
                    "bot_id": "BBOT",
                    "team": "Acme",
                    "user": "deskmate",
                    "url": "https://acme.slack.com/",
                }
            case "oauth.v2.access":
                return self._installation(str(body.get("code", "x")))
            case "users.info":
                user = self.users.get(str(body.get("user")))
                return {"user": user} if user else {"ok": False, "error": "user_not_found"}
            case "chat.postMessage" | "chat.startStream":
                return {
                    "channel": body.get("channel"),
                    "ts": ts,
                    "message": {"text": body.get("text", ""), "ts": ts},
                }
            case "chat.update" | "chat.appendStream" | "chat.stopStream":
                return {"channel": body.get("channel"), "ts": body.get("ts")}
            case "chat.postEphemeral":
                return {"message_ts": ts}
            case "conversations.history":
                return {"messages": [], "has_more": False}
            case _:
                return {}  # views.publish, reactions.add, assistant.threads.* …


def _stream_text(body: dict[str, Any]) -> str:
    chunks = body.get("chunks") or []
    text = "".join(str(c.get("text", "")) for c in chunks if c.get("type") == "markdown_text")
    return str(body.get("markdown_text") or "") + text


async def _body(request: web.Request) -> dict[str, Any]:
    if request.method == "GET":
        return dict(request.query)
    text = await request.text()
    # Some methods (chat.delete) send their arguments in the query string, which Slack takes.
    if request.content_type == "application/json":
        return dict(request.query) | json.loads(text or "{}")
    body: dict[str, Any] = dict(request.query) | dict(parse_qsl(text))
    for key in ("blocks", "attachments", "view", "metadata", "prompts", "chunks"):
        if isinstance(body.get(key), str):
            with contextlib.suppress(ValueError):
                body[key] = json.loads(body[key])
    return body


async def start_fake_slack(fake: FakeSlack) -> web.AppRunner:
    """Serve the fake on a free loopback port; sets `fake.url` to the API base URL."""
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}/api/"
    return runner
