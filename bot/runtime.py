"""The core's parts and their lifecycle: database, models, conversation service, background
work; started in a known order, stopped in reverse. Platforms and the scheduler are wired above
it, by the composition root (deskmate/process.py)."""

from __future__ import annotations

import logging

from bot.actions import Actions
from bot.alerts.evaluator import AlertEvaluator
from bot.alerts.notices import ACK
from bot.alerts.rules import AlertRules
from bot.conversation import ConversationService
from bot.embedders import create_embedder
from bot.embeddings import Embedder
from bot.event_ledger import EventLedger
from bot.feedback import FEEDBACK, Feedback
from bot.llm import Claude
from bot.outbound import Senders
from bot.schedules import Schedules, platforms_on
from bot.settings import Settings
from bot.spawner import ANSWERS, Spawner
from storage import retrieval
from storage.database import Database

logger = logging.getLogger("deskmate.runtime")

# How long in-flight background work may take to finish when the service stops.
SHUTDOWN_GRACE_SECONDS = 10.0


class Runtime:
    """Owns the database, the models and background work of one deskmate process."""

    def __init__(self, settings: Settings, *, db: Database | None = None) -> None:
        self.settings = settings
        self.db = db or Database(settings.database)
        # Answers run a few at a time: a flood waits its turn (already stored, see
        # EventLedger) instead of taking the event loop from the acks platforms wait for.
        self.tasks = Spawner(lanes={ANSWERS: settings.answer_concurrency})
        self.senders = Senders()
        self.actions = Actions()
        self.events = EventLedger(self.db, lease_seconds=settings.event_lease_seconds)
        self.alert_rules = AlertRules(
            self.db,
            self.senders,
            actor="platform",
            default_timezone=settings.default_timezone,
            platforms=platforms_on(settings),
        )
        self.alert_evaluator = AlertEvaluator(self.db, self.senders)
        self.embedder: Embedder | None = None
        self.claude: Claude | None = None
        self._conversation: ConversationService | None = None

    @property
    def conversation(self) -> ConversationService:
        if self._conversation is None:
            raise RuntimeError("Runtime.start() has not been called")
        return self._conversation

    async def start(self) -> None:
        """Database (migrated), embedder, Claude (when configured), conversation service."""
        await self.db.start(migrate=True)
        try:
            self.embedder = create_embedder(self.settings)
            if self.settings.llm_enabled:
                self.claude = Claude(self.settings)
            self._conversation = ConversationService(
                self.settings,
                self.db,
                self.embedder,
                claude=self.claude,
                tasks=self.tasks,
                alerts=self.alert_rules,
                schedules=Schedules(
                    self.db,
                    actor="chat",
                    default_timezone=self.settings.default_timezone,
                    public_departments=self.settings.public_departments,
                    platforms=platforms_on(self.settings),
                ),
            )
            feedback = Feedback(self.db, self.settings.default_timezone)
            self.actions.register(FEEDBACK, feedback.on_click)
            self.actions.register(ACK, self.alert_rules.on_ack_click)
            async with self.db.pool.acquire() as conn:
                if not await retrieval.has_reader_role(conn):
                    logger.warning(
                        "the database role cannot act as deskmate_reader: row-level security "
                        "is not enforced, retrieval relies on its SQL filter alone"
                    )
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Finish background work (bounded), then close clients and the database."""
        await self.tasks.close(grace_seconds=SHUTDOWN_GRACE_SECONDS)
        await self.events.close()
        if self.claude is not None:
            await self.claude.aclose()
        if self.embedder is not None:
            await self.embedder.aclose()
        await self.db.stop()
