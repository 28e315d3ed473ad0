"""A local fake of the Bot Connector service Teams activities' `serviceUrl` points to.

It records every call the Agents SDK's connector client makes (sends, replies, updates, new
conversations, member lookups) and can be told to fail the next calls (429 with Retry-After…).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Call:
    """One request the bot made: `kind` is send, reply, update, create or member."""

    kind: str
    method: str
    conversation_id: str | None
    activity_id: str | None  # the replyToId of a reply, the updated id of an update
    body: dict[str, Any]
    authorization: str | None
    at: float = field(default_factory=time.monotonic)

    @property
    def type(self) -> str | None:
        return self.body.get("type")

    @property
    def text(self) -> str:
        return str(self.body.get("text") or "")

    @property
    def cards(self) -> list[dict[str, Any]]:
        return [a.get("content") or {} for a in self.body.get("attachments") or []]


@dataclass
class Failure:
    status: int
    retry_after: str | None = None


@dataclass
class FakeBotConnector:
    """The fake's state: recorded calls, scripted failures, the members it knows."""

    calls: list[Call] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    url: str = ""
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1700000000001))

    def app(self) -> web.Application:
        app = web.Application()
        base = "/v3/conversations"
        app.router.add_post(base, self._create)
        app.router.add_post(base + "/{conversation}/activities", self._send)
        app.router.add_post(base + "/{conversation}/activities/{activity}", self._send)
        app.router.add_put(base + "/{conversation}/activities/{activity}", self._update)
        app.router.add_get(base + "/{conversation}/members/{member}", self._member)
        return app

    def of_kind(self, *kinds: str) -> list[Call]:
        return [c for c in self.calls if c.kind in kinds]

    @property
    def messages(self) -> list[Call]:
        """Every message activity sent or replied (not typing, not updates)."""
        return [c for c in self.of_kind("send", "reply") if c.type == "message"]

    def _next_id(self) -> str:
        return str(next(self._ids))

    def _failure(self) -> web.Response | None:
        if not self.failures:
            return None
        failure = self.failures.pop(0)
        headers = {"Retry-After": failure.retry_after} if failure.retry_after else None
        return web.json_response({"error": {"code": "Throttled"}}, status=failure.status,
                                 headers=headers)  # fmt: skip

    async def _record(self, request: web.Request, kind: str) -> Call:
        body = await request.json() if request.can_read_body else {}
        call = Call(kind, request.method, request.match_info.get("conversation"),
                    request.match_info.get("activity"), body,
                    request.headers.get("Authorization"))  # fmt: skip
        self.calls.append(call)
        return call

    async def _send(self, request: web.Request) -> web.Response:
        kind = "reply" if "activity" in request.match_info else "send"
        call = await self._record(request, kind)
        if (failed := self._failure()) is not None:
            call.kind = f"failed-{kind}"
            return failed
        return web.json_response({"id": call.body.get("id") or self._next_id()})

    async def _update(self, request: web.Request) -> web.Response:
        call = await self._record(request, "update")
        if (failed := self._failure()) is not None:
            call.kind = "failed-update"
            return failed
        return web.json_response({"id": request.match_info["activity"]})

    async def _create(self, request: web.Request) -> web.Response:
        call = await self._record(request, "create")
        if (failed := self._failure()) is not None:
            call.kind = "failed-create"
            return failed
        activity_id = self._next_id()
        channel = ((call.body.get("channelData") or {}).get("channel") or {}).get("id")
        if channel:
            conversation = f"{channel};messageid={activity_id}"
        else:
            conversation = f"a:personal-{activity_id}"
        return web.json_response({"id": conversation, "activityId": activity_id})

    async def _member(self, request: web.Request) -> web.Response:
        await self._record(request, "member")
        member = self.members.get(request.match_info["member"])
        if member is None:
            return web.json_response({"error": {"code": "NotFound"}}, status=404)
        return web.json_response(member)


# --- what Teams posts to /api/messages ----------------------------------------------------------

BOT_ID = "28:deskmate-app"
AAD_TENANT = "6f1c2a9e-0000-4000-8000-00000000aaaa"
TEAM_ID = "19:team-sales@thread.tacv2"
CHANNEL_ID = "19:channel-sales@thread.tacv2"
PERSONAL_CHAT = "a:1personal-chat-sam"


def _base(service_url: str, activity_id: str, sender: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": activity_id, "channelId": "msteams", "serviceUrl": service_url,
        "timestamp": "2026-11-22T09:00:00.000Z", "locale": "en-US", "from": sender,
        "recipient": {"id": BOT_ID, "name": "deskmate"},
    }  # fmt: skip


def person(user: str = "29:sam", aad: str = "aad-sam", name: str = "Sam Seller") -> dict[str, Any]:
    return {"id": user, "name": name, "aadObjectId": aad}


def personal_message(service_url: str, text: str, *, activity_id: str = "1001",
                     sender: dict[str, Any] | None = None,
                     conversation: str = PERSONAL_CHAT) -> dict[str, Any]:  # fmt: skip
    """A 1:1 chat message as Teams posts it."""
    return {
        **_base(service_url, activity_id, sender or person()), "type": "message",
        "textFormat": "plain", "text": text,
        "conversation": {"conversationType": "personal", "tenantId": AAD_TENANT,
                         "id": conversation},
        "entities": [{"type": "clientInfo", "locale": "en-US", "platform": "Web"}],
        "channelData": {"tenant": {"id": AAD_TENANT}},
    }  # fmt: skip


def channel_message(service_url: str, text: str, *, activity_id: str = "2001",
                    root: str | None = None, mention: bool = True,
                    sender: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """A channel post (or, with `root`, a reply in that post's thread) @-mentioning deskmate."""
    at = "<at>deskmate</at>"
    entities = [{"type": "mention", "text": at, "mentioned": {"id": BOT_ID, "name": "deskmate"}}]
    return {
        **_base(service_url, activity_id, sender or person()), "type": "message",
        "textFormat": "plain", "text": f"{at} {text}" if mention else text,
        "conversation": {"isGroup": True, "conversationType": "channel",
                         "tenantId": AAD_TENANT,
                         "id": f"{CHANNEL_ID};messageid={root or activity_id}"},
        "entities": entities if mention else [],
        "channelData": {"teamsChannelId": CHANNEL_ID, "teamsTeamId": TEAM_ID,
                        "channel": {"id": CHANNEL_ID}, "team": {"id": TEAM_ID},
                        "tenant": {"id": AAD_TENANT}},
    }  # fmt: skip


def card_click(service_url: str, data: dict[str, Any], *, card_id: str,
               conversation: str = PERSONAL_CHAT, execute: bool = True,
               sender: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """A click on a card button: Action.Execute (an invoke) or the Action.Submit fallback."""
    kind = "channel" if "@thread.tacv2" in conversation else "personal"
    activity = {
        **_base(service_url, "f:click-" + card_id, sender or person()),
        "replyToId": card_id,
        "conversation": {"conversationType": kind, "tenantId": AAD_TENANT, "id": conversation},
        "channelData": {"tenant": {"id": AAD_TENANT}, "source": {"name": "message"}},
    }  # fmt: skip
    if execute:
        activity.update(type="invoke", name="adaptiveCard/action",
                        value={"action": {"type": "Action.Execute", "verb": data["kind"],
                                          "data": data}, "trigger": "manual"})  # fmt: skip
    else:
        activity.update(type="message", value=data)
    return activity


# --- running the fake ---------------------------------------------------------------------------


@asynccontextmanager
async def running_connector() -> AsyncIterator[FakeBotConnector]:
    """The fake on a free port of 127.0.0.1; `fake.url` is the serviceUrl to put in activities."""
    fake = FakeBotConnector()
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
    try:
        yield fake
    finally:
        await runner.cleanup()
