"""Pure functions of the web chat: reading the page's requests and shaping what it shows.

No I/O here: requests are checked before anything is stored, and posts, answers and
scheduled messages all become the same JSON "post" the page renders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.errors import DeskmateError, UsageError
from bot.messages import Reply, Source
from bot.outbound import Action, Outbound
from bot.text import storable
from storage.sessions import Message
from storage.webchat import Post, PrivateAnswer

# Slack takes 40,000 characters; a question to deskmate is far shorter, and retrieval and the
# prompt budget gain nothing from more.
MAX_TEXT_CHARS = 10_000
MAX_BUTTON_CHARS = 200
CHANNEL_NAME = re.compile(r"^#?([a-z0-9][a-z0-9_-]{0,79})$")
# "@deskmate" as a word, anywhere in the message, as people type it in Slack.
MENTION = re.compile(r"(?<![\w@])@deskmate\b[,:]?", re.IGNORECASE)


class TooLong(DeskmateError):
    http_status = 413


class NotJson(DeskmateError):
    http_status = 415


@dataclass(frozen=True)
class SendRequest:
    """A person's message: into their DM with deskmate (`channel` None) or into a channel."""

    user: str
    text: str
    channel: str | None


@dataclass(frozen=True)
class ClickRequest:
    """A button the person clicked; `post` is the channel post carrying it, if any."""

    user: str
    kind: str
    value: str
    post: int | None


def channel_id(name: object) -> str:
    """`"sales"` or `"#Sales"` → `"#sales"`; UsageError for anything else."""
    match = CHANNEL_NAME.match(name.strip().lower()) if isinstance(name, str) else None
    if match is None:
        raise UsageError(f"{name!r} is not a channel name like #sales")
    return f"#{match[1]}"


def dm_conversation(email: str) -> str:
    """The conversation id of a person's direct messages with deskmate in the web chat."""
    return f"dm:{email}"


def mention(text: str) -> str | None:
    """The question in a channel message that @-mentions deskmate, or None without a mention."""
    if MENTION.search(text) is None:
        return None
    return re.sub(r"\s+", " ", MENTION.sub(" ", text)).strip() or "help"


def _string(body: dict[str, Any], key: str, *, limit: int) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{key!r} must be a non-empty string")
    if len(value) > limit:
        raise TooLong(f"{key!r} is longer than {limit:,} characters")
    return storable(value.strip())


def _object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise UsageError("the body must be a JSON object")
    return body


def parse_send(body: object) -> SendRequest:
    """Check a send request: a user email, non-empty text of sane length, an optional channel."""
    data = _object(body)
    channel = data.get("channel")
    return SendRequest(
        user=_string(data, "user", limit=320).lower(),
        text=_string(data, "text", limit=MAX_TEXT_CHARS),
        channel=None if channel in (None, "") else channel_id(channel),
    )


def parse_click(body: object) -> ClickRequest:
    """Check a click: who, which kind of button, its value, and optionally the post it is on."""
    data = _object(body)
    post = data.get("post")
    if post is not None and (not isinstance(post, int) or isinstance(post, bool) or post < 1):
        raise UsageError("'post' must be a post id")
    return ClickRequest(
        user=_string(data, "user", limit=320).lower(),
        kind=_string(data, "kind", limit=MAX_BUTTON_CHARS),
        value=_string(data, "value", limit=MAX_BUTTON_CHARS),
        post=post,
    )


def source_view(source: Source) -> dict[str, Any]:
    return {
        "number": source.number,
        "label": source.label,
        "department": source.department,
        "excerpt": source.excerpt,
    }


def action_view(action: Action) -> dict[str, Any]:
    return {"label": action.label, "kind": action.kind, "value": action.value,
            "style": action.style}  # fmt: skip


def outbound_payload(message: Outbound, *, reply_to: str | None = None) -> dict[str, Any]:
    """How a scheduled message, digest or alert is stored and shown."""
    return {
        "title": message.title,
        "fields": [list(pair) for pair in message.fields],
        "sources": [source_view(s) for s in message.sources],
        "actions": [action_view(a) for a in message.actions],
        "reply_to": reply_to,
    }


def reply_payload(reply: Reply, *, reply_to: str) -> dict[str, Any]:
    """How deskmate's answer in a channel is stored and shown (👍/👎 rate `message_id`)."""
    return {
        "sources": [source_view(s) for s in reply.sources],
        "feedback": reply.message_id,
        "status": reply.status.value,
        "reference": reply.reference,
        "reply_to": reply_to,
    }


def post_view(post: Post) -> dict[str, Any]:
    """A stored channel post as the page shows it."""
    payload = post.payload
    return _view(
        f"p{post.id}", post.author_kind, post.author_name, post.author_email, post.content,
        post.created_at.isoformat(), payload,
    )  # fmt: skip


def reply_view(reply: Reply, *, reply_to: str, created_at: str) -> dict[str, Any]:
    """An answer shown only to the asker (direct messages, commands in channels)."""
    view = _view(
        f"m{reply.message_id}" if reply.message_id else f"r-{reply_to}", "bot", None, None,
        reply.text, created_at, reply_payload(reply, reply_to=reply_to),
    )  # fmt: skip
    view["ephemeral"] = reply.ephemeral
    return view


def turn_view(message: Message, *, name: str, email: str) -> dict[str, Any]:
    """A message of today's DM session: the person's question or deskmate's answer."""
    mine = message.role == "user"
    payload = {} if mine else _stored_answer_payload(message.id, message.metadata)
    return _view(
        f"m{message.id}", "user" if mine else "bot", name if mine else None,
        email if mine else None, message.content, message.created_at.isoformat(), payload,
    )  # fmt: skip


def question_view(ref: str, name: str, email: str, text: str, created_at: str) -> dict[str, Any]:
    """A person's DM question, before the conversation service has stored it."""
    return _view(ref, "user", name, email, text, created_at, {})


def private_answer_view(answer: PrivateAnswer, *, reply_to: str | None) -> dict[str, Any]:
    """An answer only the asker sees, as another replica read it back from its session."""
    payload = _stored_answer_payload(answer.id, answer.metadata) | {"reply_to": reply_to}
    view = _view(f"m{answer.id}", "bot", None, None, answer.content,
                 answer.created_at.isoformat(), payload)  # fmt: skip
    view["ephemeral"] = answer.metadata.get("status") == "command"
    return view


def _stored_answer_payload(message_id: int, meta: dict[str, Any]) -> dict[str, Any]:
    # A stored answer keeps its sources' titles only: what the page can show again later.
    return {
        "sources": [{"number": None, "label": _label(s), "department": None, "excerpt": ""}
                    for s in meta.get("sources", [])],
        "feedback": message_id, "status": meta.get("status"), "reference": meta.get("reference"),
    }  # fmt: skip


def apology(reference: str) -> str:
    """What the asker reads when their question could not be answered at all."""
    return f"Sorry — something went wrong on my side (reference {reference})."


def _label(source: dict[str, Any]) -> str:
    title, section = source.get("title") or "", source.get("section")
    return f"{title} › {section}" if section else title


def _view(
    post_id: str,
    kind: str,
    name: str | None,
    email: str | None,
    text: str,
    created_at: str,
    payload: dict[str, Any],
) -> dict[str, Any]:
    return {
        "id": post_id,
        "author": {"kind": kind, "name": name if kind == "user" else "deskmate", "email": email},
        "text": text,
        "title": payload.get("title"),
        "fields": payload.get("fields", []),
        "sources": payload.get("sources", []),
        "actions": payload.get("actions", []),
        "feedback": payload.get("feedback"),
        "status": payload.get("status"),
        "reply_to": payload.get("reply_to"),
        "created_at": created_at,
        "ephemeral": False,
    }
