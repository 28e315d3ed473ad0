"""What the local web chat shows (SPEC §8): who may talk, its channels and their posts, and a
person's turns of today. The page and its JSON API live in handlers/webchat/; the rules and
the queries live here, so the edge only reads requests and shapes answers.
"""

from __future__ import annotations

from bot import roles, tenancy
from bot.conversation import ConversationService
from bot.errors import NotFound
from storage import channels, documents, notify, users, webchat
from storage.database import Database
from storage.notify import Note
from storage.sessions import Message
from storage.webchat import Post, PrivateAnswer

# How many questions the page suggests to a person.
SUGGESTIONS = 3


class LocalChat:
    """The web chat's view of one tenant's directory, channels and sessions."""

    def __init__(self, db: Database, conversation: ConversationService, tenant: str) -> None:
        self.db = db
        self.conversation = conversation
        self.tenant = tenant

    async def person(self, email: str) -> users.User:
        """The active directory user with that email, or NotFound."""
        tenant_id = await tenancy.tenant_id(self.db, self.tenant)
        async with self.db.pool.acquire() as conn:
            user = await users.get_by_email(conn, tenant_id, email.strip().lower())
        if user is None or not user.is_active:
            raise NotFound(f"no active user with email {email}")
        return user

    async def people(self) -> list[users.User]:
        """The active users one may talk as."""
        tenant_id = await tenancy.tenant_id(self.db, self.tenant)
        async with self.db.pool.acquire() as conn:
            found = await users.list_users(conn, tenant_id)
        return [u for u in found if u.is_active]

    async def suggestions(
        self, user: users.User, public_departments: list[str], limit: int = SUGGESTIONS
    ) -> list[str]:
        """Questions to suggest to `user`: about handbooks they may read, so an answer exists.
        One per department, the person's own departments before the public ones."""
        readable = roles.readable_departments(user, public_departments)
        tenant_id = await tenancy.tenant_id(self.db, self.tenant)
        async with self.db.pool.acquire() as conn:
            found = await documents.list_documents(conn, tenant_id)
        first: dict[str, str] = {}
        for summary in found:
            document = summary.document
            if document.status != "ready" or (readable is not None
                                              and document.department not in readable):  # fmt: skip
                continue
            first.setdefault(document.department, document.title)
        public = set(public_departments)
        order = sorted(first, key=lambda d: (d in public, d))
        return [f"What does the {first[d]} handbook say?" for d in order][:limit]

    async def channels(self, public_departments: list[str]) -> dict[str, list[str]]:
        """Web channels by id with the departments they are cleared for: the public
        departments' channels, the cleared ones, and any a message was posted into."""
        tenant_id = await tenancy.tenant_id(self.db, self.tenant)
        async with self.db.pool.acquire() as conn:
            cleared = await channels.list_clearances(conn, tenant_id, webchat.WEB)
            posted = await webchat.channels_with_posts(conn, tenant_id)
        found = {f"#{d}": [d] for d in public_departments}
        for clearance in cleared:
            if clearance.channel_id.startswith("#"):
                found.setdefault(clearance.channel_id, []).append(clearance.department)
        for channel in posted:
            found.setdefault(channel, [])
        return found

    async def recent_posts(self, channel: str, limit: int) -> list[Post]:
        """A channel's last `limit` posts, oldest first."""
        tenant_id = await tenancy.tenant_id(self.db, self.tenant)
        async with self.db.pool.acquire() as conn:
            return await webchat.recent_posts(conn, tenant_id, channel, limit=limit)

    async def post(self, post_id: int) -> Post:
        """A channel post, or NotFound."""
        tenant_id = await tenancy.tenant_id(self.db, self.tenant)
        async with self.db.pool.acquire() as conn:
            post = await webchat.get_post(conn, tenant_id, post_id)
        if post is None:
            raise NotFound(f"there is no post {post_id}")
        return post

    async def todays_turns(self, user: users.User, conversation: str) -> list[Message]:
        """The person's turns in that conversation today: their session, as the conversation
        service keeps it (one per local day)."""
        day = self.conversation.session_day(user)
        async with self.db.pool.acquire() as conn:
            return await webchat.todays_turns(conn, user.tenant_id, user.id, conversation, day)

    # --- what other replicas made (handlers/webchat/relay.py shows it live) -------------------

    async def tenant_id(self) -> int:
        return await tenancy.tenant_id(self.db, self.tenant)

    async def announce(self, note: Note) -> None:
        """Tell the other replicas (outside any transaction: it leaves at once)."""
        async with self.db.pool.acquire() as conn:
            await notify.announce(conn, note)

    async def newest_ids(self) -> tuple[int, int]:
        """The newest post id of this tenant and the newest session message id: where a
        replica that starts listening begins."""
        tenant_id = await self.tenant_id()
        async with self.db.pool.acquire() as conn:
            return (await webchat.latest_post_id(conn, tenant_id),
                    await webchat.latest_message_id(conn))  # fmt: skip

    async def posts_after(self, after: int, limit: int) -> list[Post]:
        """Posts of every channel with an id above `after`, oldest first."""
        tenant_id = await self.tenant_id()
        async with self.db.pool.acquire() as conn:
            return await webchat.posts_after(conn, tenant_id, after, limit=limit)

    async def private_answer(
        self, message_id: int, question_ref: str | None
    ) -> PrivateAnswer | None:
        """A web answer only its asker sees (a DM, a command's reply), with its question."""
        tenant_id = await self.tenant_id()
        async with self.db.pool.acquire() as conn:
            return await webchat.private_answer(conn, tenant_id, message_id, question_ref)

    async def private_answers_after(self, after: int, limit: int) -> list[PrivateAnswer]:
        """Such answers with a message id above `after`, oldest first."""
        tenant_id = await self.tenant_id()
        async with self.db.pool.acquire() as conn:
            return await webchat.private_answers_after(conn, tenant_id, after, limit=limit)

    async def person_by_id(self, user_id: int) -> users.User | None:
        tenant_id = await self.tenant_id()
        async with self.db.pool.acquire() as conn:
            return await users.get_by_id(conn, tenant_id, user_id)
