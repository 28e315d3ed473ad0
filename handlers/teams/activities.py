"""Reading Teams activities: pure functions from the SDK's Activity to deskmate's terms (no I/O).

Conversation ids: a personal chat is `a:…`, a group chat `19:…@thread.v2`, a channel
`19:…@thread.tacv2`; a message in a channel thread carries `;messageid=<root id>` after the
channel id. deskmate keys channels by the channel id and threads by the root message id.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

from microsoft_agents.activity import Activity, ActivityTypes

from bot.actions import Click
from bot.messages import IncomingMessage
from bot.text import storable, storable_json
from storage.teams import TeamsConversation

TEAMS = "teams"
PERSONAL, GROUP_CHAT, CHANNEL = "personal", "groupChat", "channel"
CARD_ACTION_INVOKE = "adaptiveCard/action"
THREAD_MARK = ";messageid="
# What our card buttons carry (see teams_cards.button); the rest of a card's data is ignored.
KIND_KEY, VALUE_KEY = "kind", "value"

_AT_TAG = re.compile(r"<at[^>]*>(.*?)</at>", re.IGNORECASE | re.DOTALL)
# Formatting tags Teams may put in a message's text; other `<…>` is the person's own text.
_FORMAT_TAG = re.compile(r"</?(?:p|div|span|br|b|i|u|s|em|strong|a|ul|ol|li|pre|code)\b[^>]*>",
                         re.IGNORECASE)  # fmt: skip
_SPACES = re.compile(r"[ \t\u00a0]+")


@dataclass(frozen=True)
class TeamsMessage:
    """A message deskmate should answer: who asked what, and where the answer goes."""

    incoming: IncomingMessage
    kind: str  # PERSONAL, GROUP_CHAT or CHANNEL
    event_key: str  # unique per delivery across conversations: dedupes Teams' retries


def missing_parts(activity: Activity) -> str | None:
    """What an inbound activity lacks that every Teams activity has and a turn needs (the
    SDK keys its turn state by channel, conversation and sender); None when complete."""
    conversation, sender = activity.conversation, activity.from_property
    if not activity.channel_id:
        return "channelId"
    if conversation is None or not conversation.id:
        return "conversation.id"
    if sender is None or not sender.id:
        return "from.id"
    return None


def split_conversation_id(conversation_id: str) -> tuple[str, str | None]:
    """`19:x@thread.tacv2;messageid=17` → (`19:x@thread.tacv2`, `17`); no thread → None."""
    base, mark, thread = conversation_id.partition(THREAD_MARK)
    return base, (thread or None) if mark else None


def thread_conversation_id(base: str, thread: str | None) -> str:
    """The conversation id that addresses a channel thread (or the conversation itself)."""
    return f"{base}{THREAD_MARK}{thread}" if thread else base


def channel_data(activity: Activity) -> dict[str, Any]:
    data = activity.channel_data
    if isinstance(data, dict):
        return data
    dump = getattr(data, "model_dump", None)
    return dump(by_alias=True, exclude_none=True) if callable(dump) else {}


def channel_data_id(activity: Activity, key: str) -> str:
    """`channelData.<key>.id` ('' when absent or not a string, as in hand-made payloads)."""
    inner = channel_data(activity).get(key)
    value = inner.get("id") if isinstance(inner, dict) else None
    return storable(value) if isinstance(value, str) else ""


def conversation_kind(activity: Activity) -> str:
    """personal, groupChat or channel (older payloads only say `isGroup` or have a channel)."""
    conversation = activity.conversation
    if conversation is not None and conversation.conversation_type:
        return conversation.conversation_type
    if channel_data(activity).get("channel"):
        return CHANNEL
    return GROUP_CHAT if conversation is not None and conversation.is_group else PERSONAL


def aad_tenant_id(activity: Activity) -> str:
    """The Azure AD tenant the conversation belongs to ('' when Teams did not say)."""
    if activity.conversation is not None and activity.conversation.tenant_id:
        return storable(activity.conversation.tenant_id)
    return channel_data_id(activity, "tenant")


def is_from_bot(activity: Activity) -> bool:
    """deskmate's own messages and other bots' (Teams bot ids start with `28:`)."""
    sender, me = activity.from_property, activity.recipient
    if sender is None or not sender.id:
        return True
    if me is not None and sender.id == me.id:
        return True
    return sender.role == "bot" or sender.id.startswith("28:")


def mentions_bot(activity: Activity) -> bool:
    me = activity.recipient.id if activity.recipient else None
    return any(m.mentioned is not None and m.mentioned.id == me for m in activity.get_mentions())


def clean_text(activity: Activity) -> str:
    """The text without the @-mention of deskmate; other mentions keep their names."""
    copy = activity.model_copy(deep=True)
    text = copy.remove_recipient_mention() if copy.recipient else copy.text or ""
    text = _AT_TAG.sub(lambda m: m.group(1), text)
    text = html.unescape(_FORMAT_TAG.sub(" ", text))
    lines = [_SPACES.sub(" ", line).strip() for line in text.splitlines()]
    return "\n".join(lines).strip()


def message_from_activity(activity: Activity) -> TeamsMessage | None:
    """The question in a message activity, or None when deskmate should stay silent: its own
    or another bot's message, a channel or group message that does not @-mention it, no text."""
    if activity.type != ActivityTypes.message or activity.conversation is None:
        return None
    if is_from_bot(activity):
        return None
    kind = conversation_kind(activity)
    if kind != PERSONAL and not mentions_bot(activity):
        return None
    text = clean_text(activity)
    if not text:
        return None
    base, thread = split_conversation_id(activity.conversation.id)
    if kind == CHANNEL:
        thread = thread or activity.id  # a new channel post starts its own thread
    sender = activity.from_property
    assert sender is not None and sender.id  # is_from_bot() said so
    incoming = IncomingMessage(
        platform=TEAMS, user_id=sender.aad_object_id or sender.id, conversation_id=base,
        text=text, is_direct=kind == PERSONAL, workspace_id=aad_tenant_id(activity),
        thread_id=thread if kind == CHANNEL else None, message_id=activity.id,
        display_name=sender.name or None,
    )  # fmt: skip
    return TeamsMessage(incoming, kind, event_key=f"{base}:{activity.id}")


def click_data(activity: Activity) -> dict[str, Any] | None:
    """What a deskmate card button carried: `Action.Execute` arrives as an invoke, the
    `Action.Submit` fallback as a message without text whose value is the data."""
    value = activity.value
    if activity.type == ActivityTypes.invoke and activity.name == CARD_ACTION_INVOKE:
        action = value.get("action") if isinstance(value, dict) else None
        data = action.get("data") if isinstance(action, dict) else None
    elif activity.type == ActivityTypes.message and not activity.text:
        data = value
    else:
        return None
    if isinstance(data, dict) and isinstance(data.get(KIND_KEY), str):
        return data
    return None


def click_from_activity(activity: Activity) -> Click | None:
    """The button click in an activity, as a platform-neutral Click."""
    data = click_data(activity)
    sender = activity.from_property
    if data is None or sender is None or not sender.id:
        return None
    return Click(
        kind=str(data[KIND_KEY]), value=str(data.get(VALUE_KEY, "")), platform=TEAMS,
        user_id=sender.aad_object_id or sender.id, workspace_id=aad_tenant_id(activity),
        display_name=sender.name or None,
    )  # fmt: skip


def conversation_record(activity: Activity) -> TeamsConversation | None:
    """What to store so deskmate can post here later: the reference, keyed by the channel id
    for channels, without the activity it was taken from (proactive posts reply to nothing)."""
    if activity.conversation is None or not activity.conversation.id or not activity.service_url:
        return None
    if storable(activity.conversation.id) != activity.conversation.id:
        return None  # not an id Teams makes (NUL, lone surrogates): nowhere to post later
    base, _ = split_conversation_id(activity.conversation.id)
    kind = conversation_kind(activity)
    reference = activity.get_conversation_reference()
    reference.activity_id = None
    reference.request_id = None
    reference.conversation = reference.conversation.model_copy(update={"id": base})
    if kind != PERSONAL:
        reference.user = None  # the last person who spoke is not who a channel post is for
    return TeamsConversation(
        conversation_id=base, conversation_type=kind, aad_tenant_id=aad_tenant_id(activity),
        team_id=channel_data_id(activity, "team") or None,
        service_url=storable(activity.service_url),
        reference=storable_json(reference.model_dump(mode="json", by_alias=True,
                                                     exclude_none=True)),
    )  # fmt: skip


def activity_payload(activity: Activity) -> dict[str, Any]:
    """The activity as JSON, to answer it again from the database (see EventLedger)."""
    return activity.model_dump(mode="json", by_alias=True, exclude_none=True)
