"""The web chat's JSON API: who can talk, where, what was said today, and sending and clicking.

Every request is checked completely before anything is stored; answers are produced in the
background (ack first) and reach the page through its event stream (handlers/webchat/stream.py).
With sign-in (off loopback) a request speaks for its signed-in person only, and in the channels
they are a member of; on loopback the page's `user` field chooses the demo person.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot import roles
from bot.actions import Click
from bot.errors import NotFound, UsageError
from bot.local_chat import LocalChat
from bot.runtime import Runtime
from bot.spawner import ANSWERS
from handlers.webchat.answer import answer
from handlers.webchat.hub import Event, Hub, Room
from handlers.webchat.relay import Relay
from handlers.webchat.sender import ChannelPosts, WebSender
from handlers.webchat.signin import SIGNED_IN, Forbidden
from handlers.webchat.views import (
    NotJson,
    channel_id,
    dm_conversation,
    mention,
    outbound_payload,
    parse_click,
    parse_send,
    post_view,
    question_view,
    turn_view,
)
from storage.tenants import DEFAULT_TENANT
from storage.users import User
from storage.webchat import WEB, Post

# How many of a channel's posts a page shows when it opens.
CHANNEL_HISTORY = 100


@dataclass
class WebChat:
    """The web chat of one process: the runtime it talks through, its live streams, and the
    relay that links them to the other replicas' (None: this process only)."""

    runtime: Runtime
    hub: Hub
    posts: ChannelPosts
    sender: WebSender
    relay: Relay | None = None
    tenant: str = DEFAULT_TENANT
    core: LocalChat = field(init=False)

    def __post_init__(self) -> None:
        self.core = LocalChat(self.runtime.db, self.runtime.conversation, self.tenant)

    async def person(self, email: str) -> User:
        """The active directory user with that email, or NotFound."""
        return await self.core.person(email)

    async def channels(self) -> dict[str, list[str]]:
        """Web channels by id with the departments they are cleared for."""
        return await self.core.channels(self.runtime.settings.public_departments)

    async def channel(self, name: object) -> str:
        """The id of a web channel the page may use, or NotFound."""
        channel = channel_id(name)
        if channel not in await self.channels():
            raise NotFound(f"there is no web channel {channel}")
        return channel

    async def member_channel(self, user: User, name: object) -> str:
        """The id of a web channel the person is a member of: NotFound when there is none,
        Forbidden when it is not theirs."""
        channel = channel_id(name)
        found = await self.channels()
        if channel not in found:
            raise NotFound(f"there is no web channel {channel}")
        if not roles.may_join_channel(user, found[channel], self.public_departments):
            raise Forbidden(f"{channel} is open to its members only")
        return channel

    @property
    def public_departments(self) -> list[str]:
        return self.runtime.settings.public_departments


WEBCHAT = web.AppKey("webchat", WebChat)


async def acting(request: web.Request, claimed: object) -> User:
    """The person a request acts as: the signed-in one (a `user` naming anyone else is refused),
    or on loopback and with WEBCHAT_TOKEN the person the page chose."""
    signed = request.get(SIGNED_IN)
    if signed is None:
        return await request.app[WEBCHAT].person(str(claimed or ""))
    if claimed not in (None, "") and str(claimed).strip().lower() != signed.user.email:
        raise Forbidden(f"you are signed in as {signed.user.email} and can act as yourself only")
    return signed.user


async def conversation_channel(request: web.Request, user: User, name: object) -> str:
    """A channel the request may use: with sign-in, one the person is a member of."""
    chat = request.app[WEBCHAT]
    if request.get(SIGNED_IN) is None:
        return await chat.channel(name)
    return await chat.member_channel(user, name)


async def check_claims(request: web.Request) -> None:
    """With sign-in, before any handler: the `user` and `channel` a request names (in its query
    or JSON body) must be the signed-in person and a channel they are a member of. Checked here
    once for every route, the event stream included."""
    if request.get(SIGNED_IN) is None:
        return
    claims: dict[str, object] = dict(request.query)
    if request.content_type == "application/json" and request.body_exists:
        try:
            body = json.loads(await request.text())  # aiohttp keeps the body for the handler
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None  # the handler says what is wrong with it
        if isinstance(body, dict):
            claims |= {key: body[key] for key in ("user", "channel") if key in body}
    user = await acting(request, claims.get("user"))
    if claims.get("channel"):
        await conversation_channel(request, user, claims["channel"])


async def me(request: web.Request) -> web.Response:
    """Who the page acts as: the signed-in person, their role and the CSRF token its
    state-changing requests must send (X-CSRF-Token); on loopback `signed_in` is false."""
    signed = request.get(SIGNED_IN)
    if signed is None:
        return web.json_response({"signed_in": False})
    user = signed.user
    return web.json_response({
        "signed_in": True, "email": user.email, "name": user.display_name,
        "role": roles.role_of(user).value, "departments": list(user.department_access),
        "head_of": list(user.dept_head_for), "super_user": user.is_super_user,
        "provider": signed.provider, "csrf_token": signed.csrf_token,
        "expires_at": signed.expires_at.isoformat(),
    })  # fmt: skip


async def read_json(request: web.Request) -> object:
    """The request's JSON body; 415 unless sent as JSON, 400 when it does not parse. Requiring
    application/json also keeps other web sites out: browsers preflight it cross-origin."""
    if request.content_type != "application/json":
        raise NotJson("send the body as application/json")
    try:
        return json.loads(await request.text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UsageError("the body is not valid JSON") from None


async def info(request: web.Request) -> web.Response:
    """What the page says about the service: the language model and the platforms on."""
    runtime = request.app[WEBCHAT].runtime
    settings = runtime.settings
    return web.json_response({
        "llm": "claude" if runtime.claude is not None else "offline",
        "model": settings.anthropic_model if runtime.claude is not None else None,
        "platforms": runtime.senders.platforms,
    })  # fmt: skip


async def list_users(request: web.Request) -> web.Response:
    """The active users one may talk as, with the departments they read (signed in: oneself)."""
    signed = request.get(SIGNED_IN)
    found = [signed.user] if signed else await request.app[WEBCHAT].core.people()
    return web.json_response({"users": [
        {"email": u.email, "name": u.display_name, "departments": list(u.department_access),
         "head_of": list(u.dept_head_for), "super_user": u.is_super_user}
        for u in found
    ]})  # fmt: skip


async def list_channels(request: web.Request) -> web.Response:
    """The web channels and what each is cleared for (public ones first); signed in, those
    the person is a member of."""
    chat = request.app[WEBCHAT]
    public = set(chat.runtime.settings.public_departments)
    found = await chat.channels()
    if signed := request.get(SIGNED_IN):
        found = {channel: cleared for channel, cleared in found.items()
                 if roles.may_join_channel(signed.user, cleared, public)}  # fmt: skip
    listed = [
        {"id": channel, "name": channel[1:], "departments": departments,
         "public": channel[1:] in public}
        for channel, departments in found.items()
    ]  # fmt: skip
    listed.sort(key=lambda c: (not c["public"], c["id"]))
    return web.json_response({"channels": listed})


async def history(request: web.Request) -> web.Response:
    """A channel's recent posts, or the person's DM turns of today (their session)."""
    chat = request.app[WEBCHAT]
    user = await acting(request, request.query.get("user", ""))
    if request.query.get("channel"):
        channel = await conversation_channel(request, user, request.query["channel"])
        posts = await chat.core.recent_posts(channel, CHANNEL_HISTORY)
        return web.json_response({"posts": [post_view(p) for p in posts]})
    turns = await chat.core.todays_turns(user, dm_conversation(user.email))
    return web.json_response({"posts": [
        turn_view(t, name=user.display_name, email=user.email) for t in turns
    ]})  # fmt: skip


async def suggestions(request: web.Request) -> web.Response:
    """Questions the person can get an answer to: about handbooks they may read."""
    chat = request.app[WEBCHAT]
    user = await acting(request, request.query.get("user", ""))
    found = await chat.core.suggestions(user, chat.runtime.settings.public_departments)
    return web.json_response({"suggestions": found})


async def send(request: web.Request) -> web.Response:
    """A person's message: stored (channels) and answered in the background when it is a DM or
    @-mentions deskmate. 202 with the post; the answer arrives on the event stream."""
    chat = request.app[WEBCHAT]
    ask = parse_send(await read_json(request))
    user = await acting(request, ask.user)
    if ask.channel is None:
        ref = f"q-{secrets.token_hex(6)}"
        now = chat.runtime.conversation.clock().isoformat()
        view = question_view(ref, user.display_name, user.email, ask.text, now)
        chat.hub.publish(Room(chat.tenant, dm_conversation(user.email)), Event("post", view))
        question: str | None = ask.text
    else:
        channel = await conversation_channel(request, user, ask.channel)
        post = await chat.posts.add(
            chat.tenant, channel, author_kind="user", content=ask.text, user_id=user.id
        )
        view = post_view(post)
        question = mention(ask.text)
    if question is not None:
        chat.runtime.tasks.spawn(
            answer(chat.runtime, chat.hub, chat.posts, user, ask.channel, question, view["id"],
                   tenant=chat.tenant, relay=chat.relay),
            name=f"webchat-answer:{view['id']}", lane=ANSWERS,
        )  # fmt: skip
    return web.json_response({"post": view, "answering": question is not None}, status=202)


async def click(request: web.Request) -> web.Response:
    """A button: dispatched like a Slack or Teams click; the post is replaced when asked."""
    chat = request.app[WEBCHAT]
    pressed = parse_click(await read_json(request))
    user = await acting(request, pressed.user)
    post = None
    if pressed.post is not None:
        post = await _post_with_button(chat, pressed.post, pressed.kind, pressed.value)
        await conversation_channel(request, user, post.channel)
    result = await chat.runtime.actions.dispatch(Click(
        kind=pressed.kind, value=pressed.value, platform=WEB, user_id=user.email,
        tenant=chat.tenant, email=user.email, display_name=user.display_name,
        trusted_email=user.email,
    ))  # fmt: skip
    replaced = None
    if result.replace_with is not None and post is not None:
        payload = outbound_payload(result.replace_with)
        updated = await chat.posts.replace(chat.tenant, post.id, result.replace_with.text, payload)
        replaced = post_view(updated) if updated is not None else None
    return web.json_response({"text": result.text, "post": replaced})


async def _post_with_button(chat: WebChat, post_id: int, kind: str, value: str) -> Post:
    """The channel post, when it really carries that button (a page cannot invent buttons)."""
    post = await chat.core.post(post_id)
    buttons: list[dict[str, Any]] = post.payload.get("actions", [])
    if not any(b.get("kind") == kind and b.get("value") == value for b in buttons):
        raise UsageError("that button is not on this post")
    return post
