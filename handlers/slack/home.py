"""The App Home tab: what deskmate remembers about you, and how to talk to it."""

from __future__ import annotations

from typing import Any

from bot.conversation import Home
from bot.schedules import describe_what, describe_when

MAX_LISTED = 20


def home_view(home: Home) -> dict[str, Any]:
    """A `home` view for views.publish: memories, your schedules, the alerts firing now."""
    memories = home.memories
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "deskmate"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": (
            "Ask me in a DM, or mention me in a channel. I answer from the documents your "
            "departments may read and cite them. Type `help` for commands.")}},
        {"type": "divider"},
        {"type": "header", "text": {"type": "plain_text", "text": "What I remember about you"}},
    ]  # fmt: skip
    if memories:
        listed = "\n".join(f"• {m.content}  `#{m.id}`" for m in memories[:MAX_LISTED])
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": listed[:3000]}})
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text":
                       "Say `forget #id` in a DM to drop one."}]})  # fmt: skip
    else:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text":
                       "Nothing yet. Tell me with `remember …` in a DM."}})  # fmt: skip
    blocks += _schedules(home) + _alerts(home)
    return {"type": "home", "blocks": blocks}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def _schedules(home: Home) -> list[dict[str, Any]]:
    lines = [
        f"• #{s.id} {describe_what(s)}, {describe_when(s)} in `{s.platform}:{s.channel}` "
        f"— {s.status}"
        for s in home.schedules[:MAX_LISTED]
    ]
    return [
        {"type": "divider"},
        {"type": "header", "text": {"type": "plain_text", "text": "Your schedules"}},
        _section(
            "\n".join(lines)
            if lines
            else "None. Add one in a channel: `/deskmate schedule add --cron …`"
        ),
    ]


def _alerts(home: Home) -> list[dict[str, Any]]:
    lines = [f"• *{name}* ({severity})" for name, severity in home.firing_alerts[:MAX_LISTED]]
    return [
        {"type": "divider"},
        {"type": "header", "text": {"type": "plain_text", "text": "Alerts firing now"}},
        _section("\n".join(lines) if lines else "None. ✅"),
    ]
