"""Answering a web chat message in the background: the same conversation service as Slack and
Teams, its pieces streamed to the asker's pages on this replica, the finished answer posted
where it belongs (and announced to the other replicas, whose pages may include the asker's)."""

from __future__ import annotations

import logging

from bot.errors import report_error
from bot.messages import IncomingMessage, Reply
from bot.runtime import Runtime
from handlers.webchat.hub import Event, Hub, Room
from handlers.webchat.relay import Relay
from handlers.webchat.sender import ChannelPosts
from handlers.webchat.views import apology, dm_conversation, reply_payload, reply_view
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
    relay: Relay | None = None,
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
            await _tell_other_replicas(relay, user, channel, ref, reply)
        else:
            await posts.add(tenant, channel, author_kind="bot", content=reply.text,
                            payload=reply_payload(reply, reply_to=ref))  # fmt: skip
    except Exception as exc:  # the page must not wait forever on a question that failed
        reference = report_error(exc, where="webchat.answer")
        failure = {"reply_to": ref, "text": apology(reference)}
        hub.publish(room, Event("error", failure, audience=user.email))
        if relay is not None:
            await relay.announce(relay.note("error", user.tenant_id, user=user.id, reply_to=ref,
                                            channel=channel, reference=reference))  # fmt: skip


async def _tell_other_replicas(
    relay: Relay | None, user: User, channel: str | None, ref: str, reply: Reply
) -> None:
    """The asker's pages on other replicas read the stored answer back by its id; an answer
    that could not even be stored crosses as its apology's reference."""
    if relay is None:
        return
    ids = {"user": user.id, "reply_to": ref, "channel": channel}
    if reply.message_id is not None:
        relay.answers.add(reply.message_id)
        await relay.announce(relay.note("answer", user.tenant_id, message=reply.message_id, **ids))
    elif reply.reference is not None:
        await relay.announce(relay.note("error", user.tenant_id, reference=reply.reference, **ids))
