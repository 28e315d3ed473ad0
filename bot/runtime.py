"""The service's parts and their lifecycle: started in a known order, stopped in reverse."""

from __future__ import annotations

import logging

from bot.settings import Settings
from bot.tasks import Spawner
from storage.database import Database

logger = logging.getLogger("deskmate.runtime")

# How long in-flight background work may take to finish when the service stops.
SHUTDOWN_GRACE_SECONDS = 10.0


class Runtime:
    """Owns the database and background work of one deskmate process."""

    def __init__(self, settings: Settings, *, db: Database | None = None) -> None:
        self.settings = settings
        self.db = db or Database(settings)
        self.tasks = Spawner()

    async def start(self) -> None:
        await self.db.start(migrate=True)

    async def stop(self) -> None:
        await self.tasks.close(grace_seconds=SHUTDOWN_GRACE_SECONDS)
        await self.db.stop()
