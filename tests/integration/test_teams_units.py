"""Teams, the pieces that need the database: the Agents SDK configuration from this test's
settings, and the conversation-reference and delivery tables."""

from __future__ import annotations

from typing import Any

from microsoft_agents.activity import Activity
from pydantic import SecretStr

from bot.settings import Settings
from handlers.teams.activities import conversation_record
from handlers.teams.sdk import sdk_configuration
from storage import teams
from storage.database import Database
from tests.support.fakes.bot_connector import AAD_TENANT, CHANNEL_ID, channel_message

URL = "http://127.0.0.1:9/"


def activity(payload: dict[str, Any]) -> Activity:
    return Activity.model_validate(payload)


def test_sdk_configuration_uses_the_sdk_names(settings: Settings) -> None:
    configured = settings.model_copy(update={
        "teams_client_id": "app", "teams_client_secret": SecretStr("s3cret"),
        "teams_tenant_id": AAD_TENANT,
    })  # fmt: skip
    connection = sdk_configuration(configured)["CONNECTIONS"]["SERVICE_CONNECTION"]["SETTINGS"]
    assert connection == {"ANONYMOUS_ALLOWED": False, "CLIENTID": "app",
                          "CLIENTSECRET": "s3cret", "TENANTID": AAD_TENANT}  # fmt: skip


async def test_references_and_deliveries_round_trip(db: Database) -> None:
    record = conversation_record(activity(channel_message(URL, "hi")))
    assert record is not None
    async with db.pool.acquire() as conn:
        assert await teams.latest_conversation(conn, 1) is None
        await teams.remember_conversation(conn, 1, record)
        await teams.remember_conversation(conn, 1, record)  # seen again: still one row
        assert await teams.get_conversation(conn, 1, CHANNEL_ID) == record
        assert await teams.latest_conversation(conn, 1) == record
        assert await conn.fetchval("SELECT count(*) FROM teams_conversations") == 1

        delivery = teams.TeamsDelivery(CHANNEL_ID, "99", "99")
        await teams.record_delivery(conn, 1, "key-1", delivery)
        await teams.record_delivery(conn, 1, "key-1", teams.TeamsDelivery(CHANNEL_ID, "1", None))
        assert await teams.find_delivery(conn, 1, "key-1") == delivery
        assert await teams.find_delivery(conn, 1, "key-2") is None
