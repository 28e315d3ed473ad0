"""The person's own data over the web (SPEC §9): their memories listed, edited and forgotten, an
export as JSON, and erasing them all. Signed in, "the person" is the signed-in one; on loopback
the demo person named by `?user=`.

    GET    /webchat/api/me/memories             the active memories, newest first
    PATCH  /webchat/api/me/memories/{id}        {"content": "…"}: new text for one
    DELETE /webchat/api/me/memories/{id}        forget one
    GET    /webchat/api/me/export               everything, as a JSON download
    DELETE /webchat/api/me/memories             erase them all (written to the audit log)
"""

from __future__ import annotations

import re

from aiohttp import web

from bot.errors import UsageError
from bot.own_data import OwnData, memory_view
from handlers.webchat.api import WEBCHAT, acting, read_json
from storage.users import User


def _own_data(request: web.Request) -> OwnData:
    return OwnData(request.app[WEBCHAT].runtime.conversation.memories)


async def _person(request: web.Request) -> User:
    return await acting(request, request.query.get("user", ""))


def _memory_id(request: web.Request) -> int:
    raw = request.match_info["memory_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise UsageError(f"{raw!r} is not a memory number")
    return int(raw)


async def listing(request: web.Request) -> web.Response:
    memories = await _own_data(request).listing(await _person(request))
    return web.json_response({"memories": [memory_view(m) for m in memories]})


async def edit(request: web.Request) -> web.Response:
    user = await _person(request)
    body = await read_json(request)
    content = body.get("content") if isinstance(body, dict) else None
    memory = await _own_data(request).edit(user, _memory_id(request), content)
    return web.json_response({"memory": memory_view(memory)})


async def forget(request: web.Request) -> web.Response:
    memory = await _own_data(request).forget(await _person(request), _memory_id(request))
    return web.json_response({"forgotten": memory_view(memory, active=False)})


async def export(request: web.Request) -> web.Response:
    user = await _person(request)
    now = request.app[WEBCHAT].runtime.conversation.clock()
    data = await _own_data(request).export(user, now)
    name = re.sub(r"[^a-z0-9._-]", "-", user.email.split("@")[0])
    filename = f"deskmate-{name}-{now.date().isoformat()}.json"
    return web.json_response(
        data, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


async def erase(request: web.Request) -> web.Response:
    user = await _person(request)
    erased = await _own_data(request).erase(user, actor=f"web:{user.email}")
    return web.json_response({"erased": erased})
