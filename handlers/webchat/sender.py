"""Posting into web channels: stored (so a page opened later shows them) and published live,
here and, through the relay's note sent in the same transaction, on every other replica.

`WebSender` is the web chat's `Sender` (bot/outbound.py): the scheduler and alerts post
`web:#channel` targets through it exactly as they post to Slack or Teams.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from bot import tenancy
from bot.errors import NotFound, UsageError
from bot.outbound import Delivery, DeliveryError, Outbound, Target
from handlers.webchat.hub import Event, Hub, Room
from handlers.webchat.relay import Relay
from handlers.webchat.views import channel_id, outbound_payload, post_view
from storage import notify, webchat
from storage.database import Database
from storage.webchat import Post

logger = logging.getLogger("deskmate.webchat")


class ChannelPosts:
    """A web channel's timeline: every post is stored, then shown to the pages in the channel;
    with a relay, the pages of other replicas too (without one, this process's pages only)."""

    def __init__(self, db: Database, hub: Hub, relay: Relay | None = None) -> None:
        self.db = db
        self.hub = hub
        self.relay = relay

    async def tenant_id(self, tenant: str) -> int:
        return await tenancy.tenant_id(self.db, tenant)

    async def add(
        self,
        tenant: str,
        channel: str,
        *,
        author_kind: str,
        content: str,
        user_id: int | None = None,
        payload: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Post:
        """Store a post and show it live; a repeated idempotency key shows nothing new."""
        tenant_id = await tenancy.tenant_id(self.db, tenant)
        async with self.db.transaction() as conn:
            post, created = await webchat.add_post(
                conn, tenant_id, channel, author_kind=author_kind, content=content,
                user_id=user_id, payload=payload, idempotency_key=idempotency_key,
            )  # fmt: skip
            if created and self.relay is not None:
                # Marked before commit: a catch-up that reads it right after must not show it
                # here a second time.
                self.relay.posts.add(post.id)
                await notify.announce(conn, self.relay.note("post", tenant_id, post=post.id))
        if created:
            self.hub.publish(Room(tenant, channel), Event("post", post_view(post)))
        return post

    async def replace(
        self, tenant: str, post_id: int, content: str, payload: dict[str, Any]
    ) -> Post | None:
        """Change a post's content and show the change; None when there is no such post."""
        tenant_id = await tenancy.tenant_id(self.db, tenant)
        async with self.db.transaction() as conn:
            post = await webchat.update_post(
                conn, tenant_id, post_id, content=content, payload=payload
            )
            if post is not None and self.relay is not None:
                await notify.announce(conn, self.relay.note("update", tenant_id, post=post.id))
        if post is not None:
            self.hub.publish(Room(tenant, post.channel), Event("update", post_view(post)))
        return post

    async def by_key(self, tenant: str, channel: str, idempotency_key: str) -> Post | None:
        """The channel's post made with this idempotency key, if any."""
        tenant_id = await tenancy.tenant_id(self.db, tenant)
        async with self.db.pool.acquire() as conn:
            return await webchat.post_by_key(conn, tenant_id, channel, idempotency_key)


class WebSender:
    """The `web` platform's sender: targets look like `web:#sales`."""

    platform = "web"

    def __init__(self, posts: ChannelPosts) -> None:
        self.posts = posts

    async def post(self, target: Target, message: Outbound) -> Delivery:
        """Post into the channel (as a reply to `target.thread`, a post id, when set)."""
        channel = _channel(target)
        reply_to = f"p{target.thread}" if target.thread else None
        try:
            post = await self.posts.add(
                target.tenant, channel, author_kind="bot", content=message.text,
                payload=outbound_payload(message, reply_to=reply_to),
                idempotency_key=message.idempotency_key,
            )  # fmt: skip
        except NotFound as exc:  # no such tenant: trying again will not help
            raise DeliveryError(str(exc), retryable=False) from exc
        except Exception as exc:  # the web chat's "platform" is our database: likely transient
            logger.warning("web chat post to %s failed: %s", target, type(exc).__name__)
            raise DeliveryError(f"could not post to {target}", retryable=True) from exc
        return _delivery(target, post)

    async def update(self, target: Target, message_id: str, message: Outbound) -> None:
        """Replace an earlier post's content, e.g. an alert once acknowledged."""
        _channel(target)
        if not message_id.isdigit():
            raise DeliveryError(f"{message_id!r} is not a web chat post id", retryable=False)
        try:
            post = await self.posts.replace(
                target.tenant, int(message_id), message.text, outbound_payload(message)
            )
        except NotFound as exc:
            raise DeliveryError(str(exc), retryable=False) from exc
        except Exception as exc:
            logger.warning("web chat update in %s failed: %s", target, type(exc).__name__)
            raise DeliveryError(f"could not update a post in {target}", retryable=True) from exc
        if post is None:
            raise DeliveryError(f"no post {message_id} in {target}", retryable=False)

    async def find(
        self, target: Target, idempotency_key: str, *, since: dt.datetime | None = None
    ) -> Delivery | None:
        """The post an earlier attempt with this key made in the channel, if any: the key is
        stored with the post (in the same insert), so the web chat can always tell, however
        long ago (`since` is not needed)."""
        channel = _channel(target)
        try:
            post = await self.posts.by_key(target.tenant, channel, idempotency_key)
        except NotFound as exc:
            raise DeliveryError(str(exc), retryable=False) from exc
        except Exception as exc:
            logger.warning("web chat lookup in %s failed: %s", target, type(exc).__name__)
            raise DeliveryError(f"could not look for a post in {target}", retryable=True) from exc
        return None if post is None else _delivery(target, post)


def _delivery(target: Target, post: Post) -> Delivery:
    # Replies to this post (an alert's "resolved") use the post itself as their thread.
    return Delivery(message_id=str(post.id), thread=target.thread or str(post.id))


def _channel(target: Target) -> str:
    if target.platform != WebSender.platform:
        raise DeliveryError(f"{target} is not a web chat target", retryable=False)
    try:
        return channel_id(target.channel)
    except UsageError:
        raise DeliveryError(
            f"{target} is not a web channel like web:#sales", retryable=False
        ) from None
