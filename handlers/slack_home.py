"""The App Home tab: what deskmate remembers about you, and how to talk to it."""

from __future__ import annotations

from typing import Any

from storage.memories import Memory

MAX_LISTED = 20


def home_view(memories: list[Memory]) -> dict[str, Any]:
    """A `home` view for views.publish."""
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
    return {"type": "home", "blocks": blocks}
