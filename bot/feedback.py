"""👍 / 👎 on answers: stored per user and answer, changeable, counted by the alert metric."""

from __future__ import annotations

from bot.actions import Click, ClickResult
from bot.errors import UsageError
from bot.identity import resolve_user
from bot.messages import IncomingMessage
from storage import measurements
from storage.database import Database

FEEDBACK = "feedback"
RATINGS = {"up": 1, "down": -1}


def button_value(message_id: int, rating: str) -> str:
    """What a feedback button carries: the answer's message id and the rating."""
    return f"{message_id}:{rating}"


class Feedback:
    def __init__(self, db: Database, default_timezone: str) -> None:
        self.db = db
        self.default_timezone = default_timezone

    async def on_click(self, click: Click) -> ClickResult:
        """Record the clicker's rating of an answer; a second click changes it."""
        message_id, _, rating = click.value.partition(":")
        if not message_id.isdigit() or rating not in RATINGS:
            raise UsageError(f"bad feedback value {click.value!r}")
        who = IncomingMessage(
            platform=click.platform, user_id=click.user_id, conversation_id="", text="",
            is_direct=True, tenant=click.tenant, workspace_id=click.workspace_id,
            email=click.email, display_name=click.display_name, trusted_email=click.trusted_email,
        )  # fmt: skip
        tenant_id, user = await resolve_user(self.db, who, self.default_timezone)
        async with self.db.pool.acquire() as conn:
            stored = await measurements.record_feedback(
                conn, tenant_id, int(message_id), user.id, RATINGS[rating]
            )
        if not stored:
            return ClickResult("That answer is no longer there to rate.")
        return ClickResult("Thanks for the feedback!" if rating == "up"
                           else "Thanks — I'll use that to do better.")  # fmt: skip
