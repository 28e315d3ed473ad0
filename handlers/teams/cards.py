"""Rendering for Teams: Adaptive Cards for proactive messages and answers, and text splitting.

Pure functions (no I/O). A button is an `Action.Execute` (Universal Actions, Adaptive Cards 1.4)
with an `Action.Submit` fallback for clients without it; both carry `{kind, value}`, which
`teams_activities.click_data` reads back.
"""

from __future__ import annotations

from typing import Any

from microsoft_agents.activity import Attachment

from bot.feedback import FEEDBACK, button_value
from bot.messages import Reply, ReplyStatus, Source
from bot.outbound import Action, Outbound
from handlers.teams.activities import KIND_KEY, VALUE_KEY

ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
CARD_VERSION = "1.4"  # the first version with Action.Execute
# Teams refuses messages over about 80 KB of JSON (older clients: 28 KB). Text parts stay far
# below either, leaving room for the card and the activity envelope.
MAX_TEXT_BYTES = 20_000
_STYLES = {"primary": "positive", "danger": "destructive"}


def split_text(text: str, limit: int = MAX_TEXT_BYTES) -> list[str]:
    """Pieces of at most `limit` UTF-8 bytes, cut at a paragraph, line or word where possible."""
    parts: list[str] = []
    rest = text.strip()
    while len(rest.encode()) > limit:
        window = rest.encode()[:limit].decode(errors="ignore")
        cut = len(window)
        for separator in ("\n\n", "\n", " "):
            at = window.rfind(separator)
            if at > len(window) // 2:  # never leave a sliver of a piece behind
                cut = at
                break
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    parts.append(rest)
    return [part for part in parts if part] or [""]


def button(action: Action) -> dict[str, Any]:
    """One Adaptive Card button for a deskmate Action."""
    data = {KIND_KEY: action.kind, VALUE_KEY: action.value}
    style = _STYLES.get(action.style or "", "default")
    fallback = {"type": "Action.Submit", "title": action.label, "data": data, "style": style}
    return {
        "type": "Action.Execute", "title": action.label, "verb": action.kind, "data": data,
        "style": style, "fallback": fallback,
    }  # fmt: skip


def _source_blocks(sources: tuple[Source, ...]) -> list[dict[str, Any]]:
    if not sources:
        return []
    blocks: list[dict[str, Any]] = [
        {"type": "TextBlock", "text": "Sources", "weight": "Bolder", "size": "Small",
         "spacing": "Medium", "wrap": True},
    ]  # fmt: skip
    for source in sources:
        blocks.append({
            "type": "TextBlock", "text": f"[{source.number}] {source.label} · {source.department}",
            "size": "Small", "isSubtle": True, "spacing": "None", "wrap": True,
        })  # fmt: skip
    return blocks


def card(
    body: list[dict[str, Any]], actions: tuple[Action, ...] = (), summary: str = ""
) -> dict[str, Any]:
    """An Adaptive Card with `body` and deskmate buttons."""
    content: dict[str, Any] = {
        "type": "AdaptiveCard", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": CARD_VERSION, "body": body, "msteams": {"width": "Full"},
    }  # fmt: skip
    if actions:
        content["actions"] = [button(action) for action in actions]
    if summary:
        content["fallbackText"] = summary
    return content


def outbound_card(message: Outbound, text: str | None = None) -> dict[str, Any]:
    """A scheduled message, digest or alert: title, text, facts, sources and buttons.
    `text` replaces the message's text (the first piece of a long one)."""
    body: list[dict[str, Any]] = []
    if message.title:
        body.append({"type": "TextBlock", "text": message.title, "weight": "Bolder",
                     "size": "Medium", "wrap": True})  # fmt: skip
    shown = message.text if text is None else text
    if shown:
        body.append({"type": "TextBlock", "text": shown, "wrap": True})
    if message.fields:
        facts = [{"title": label, "value": value} for label, value in message.fields]
        body.append({"type": "FactSet", "facts": facts})
    body.extend(_source_blocks(message.sources))
    return card(body, message.actions, summary=message.title or shown[:200])


def feedback_actions(reply: Reply) -> tuple[Action, ...]:
    """👍 / 👎 for an answer deskmate can be rated on (not for commands or apologies)."""
    if reply.message_id is None or reply.status not in (ReplyStatus.ANSWERED, ReplyStatus.OFFLINE):
        return ()
    return (
        Action("👍 Helpful", FEEDBACK, button_value(reply.message_id, "up")),
        Action("👎 Not helpful", FEEDBACK, button_value(reply.message_id, "down")),
    )


def answer_card(reply: Reply) -> dict[str, Any] | None:
    """The card under an answer: its sources and the feedback buttons (None when neither)."""
    actions = feedback_actions(reply)
    blocks = _source_blocks(reply.sources)
    if not blocks and not actions:
        return None
    if not blocks:
        blocks = [{"type": "TextBlock", "text": "Was this helpful?", "size": "Small",
                   "isSubtle": True, "wrap": True}]  # fmt: skip
    return card(blocks, actions)


def attachment(content: dict[str, Any]) -> Attachment:
    """An Adaptive Card as an activity attachment."""
    return Attachment(content_type=ADAPTIVE_CARD, content=content)
