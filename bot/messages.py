"""What crosses between the platform edges and the conversation service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from bot.text import storable


class ReplyStatus(StrEnum):
    ANSWERED = "answered"  # Claude answered
    OFFLINE = "offline"  # no language model: passages quoted
    COMMAND = "command"  # remember / forget / memories / docs / help
    ERROR = "error"  # apology with a reference id


@dataclass(frozen=True)
class Profile:
    """What a platform says about a person: used to match them to the directory by email."""

    email: str | None = None
    display_name: str | None = None


# Asks the platform for the sender's profile; called only for a person the directory does not
# know yet, and at most once per message.
ProfileLookup = Callable[[], Awaitable[Profile]]


@dataclass(frozen=True)
class IncomingMessage:
    """One message a person sent deskmate, whatever the platform.

    `conversation_id` is the DM, channel or chat; `thread_id` the thread inside it, if any.
    `is_direct` is true in direct messages and a user's own assistant threads: only there are
    personal memories used. `email` and `display_name` help match an unknown user, and
    `lookup_profile`, when the edge can ask its platform (Slack's users.info, Teams' member
    lookup), is how it gets them only when needed; `trusted_email` is set only by surfaces that
    authenticated the person by email themselves (terminal, web demo).
    """

    platform: str
    user_id: str
    conversation_id: str
    text: str
    is_direct: bool
    tenant: str = "default"
    workspace_id: str = ""
    thread_id: str | None = None
    message_id: str | None = None
    email: str | None = None
    display_name: str | None = None
    trusted_email: str | None = None
    lookup_profile: ProfileLookup | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Whatever the platform sent, what is kept is what PostgreSQL can store (bot/text.py).
        for name in ("user_id", "conversation_id", "text", "thread_id", "message_id", "email",
                     "display_name"):  # fmt: skip
            value = getattr(self, name)
            if value is not None and storable(value) is not value:
                object.__setattr__(self, name, storable(value))

    @property
    def conversation_key(self) -> str:
        """Sessions are per conversation and, inside channels, per thread."""
        return (
            f"{self.conversation_id}:{self.thread_id}" if self.thread_id else self.conversation_id
        )


@dataclass(frozen=True)
class Source:
    """A document passage an answer relied on."""

    number: int
    title: str
    section: str | None
    department: str
    document_id: int
    chunk_id: int
    excerpt: str = ""

    @property
    def label(self) -> str:
        return f"{self.title} › {self.section}" if self.section else self.title


@dataclass(frozen=True)
class Reply:
    """What the platform shows: text in Markdown, the sources, and ids for feedback."""

    text: str
    status: ReplyStatus
    sources: tuple[Source, ...] = ()
    reference: str | None = None
    session_id: int | None = None
    message_id: int | None = None  # the stored assistant message, for 👍/👎
    memories_used: tuple[str, ...] = field(default=())
    ephemeral: bool = False  # commands: shown only to the asker where the platform allows
