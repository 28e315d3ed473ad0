"""Answering a web chat message in the background: the same conversation service as Slack and
Teams, its pieces streamed to the asker's pages, the finished answer posted where it belongs."""

from __future__ import annotations

import logging

from bot.errors import report_error
from bot.messages import IncomingMessage
from bot.runtime import Runtime
from handlers.webchat.hub import Event, Hub, Room
from handlers.webchat.sender import ChannelPosts
from handlers.webchat.views import dm_conversation, reply_payload, reply_view
from storage.users import User
from storage.webchat import WEB

logger = logging.getLogger("deskmate.webchat")


def incoming(user: User, channel: str | None, text: str, ref: str, tenant: str) -> IncomingMessage:
    """The platform-neutral message: a trusted web user (the page is local or token-guarded)
    in their DM with deskmate, or in a channel, where only the channel's clearances apply."""
    return IncomingMessage(
        platform=WEB, user_id=user.email, trusted_email=user.email, email=user.email,
        display_name=user.display_name, tenant=tenant, text=text, message_id=ref,
        conversation_id=channel or dm_conversation(user.email), is_direct=channel is None,
    )  # fmt: skip


async def answer(
    runtime: Runtime,
    hub: Hub,
    posts: ChannelPosts,
    user: User,
    channel: str | None,
    text: str,
    ref: str,
    *,
    tenant: str,
) -> None:
    """Answer `text`; `ref` is the question's post id, which every event about the answer
    carries as `reply_to` so the page puts the pieces under the right question."""
    room = Room(tenant, channel or dm_conversation(user.email))

    async def on_delta(piece: str) -> None:
        # Only the asker sees the answer being written: a command's reply (e.g. their memories)
        # must not reach a channel, and it is not known to be one until it is finished.
        hub.publish(room, Event("delta", {"reply_to": ref, "text": piece}, audience=user.email))

    try:
        reply = await runtime.conversation.handle(incoming(user, channel, text, ref, tenant),
                                                  on_delta)  # fmt: skip
        if channel is None or reply.ephemeral:
            created = runtime.conversation.clock().isoformat()
            view = reply_view(reply, reply_to=ref, created_at=created)
            hub.publish(room, Event("post", view, audience=user.email))
        else:
            await posts.add(tenant, channel, author_kind="bot", content=reply.text,
                            payload=reply_payload(reply, reply_to=ref))  # fmt: skip
    except Exception as exc:  # the page must not wait forever on a question that failed
        reference = report_error(exc, where="webchat.answer")
        sorry = f"Sorry — something went wrong on my side (reference {reference})."
        hub.publish(room, Event("error", {"reply_to": ref, "text": sorry}, audience=user.email))
