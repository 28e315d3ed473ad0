"""The service's parts and their lifecycle: started in a known order, stopped in reverse."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.actions import Actions
from bot.alerts.evaluator import AlertEvaluator
from bot.alerts.messages import ACK
from bot.alerts.rules import AlertRules
from bot.conversation import ConversationService
from bot.deliveries import EventLedger
from bot.embeddings import Embedder, create_embedder
from bot.feedback import FEEDBACK, Feedback
from bot.llm import Claude
from bot.outbound import Senders
from bot.schedules import Schedules
from bot.settings import Settings
from bot.tasks import Spawner
from storage import retrieval
from storage.database import Database

if TYPE_CHECKING:
    from scheduler.service import Scheduler

logger = logging.getLogger("deskmate.runtime")

# How long in-flight background work may take to finish when the service stops.
SHUTDOWN_GRACE_SECONDS = 10.0


class Runtime:
    """Owns the database, the models and background work of one deskmate process."""

    def __init__(self, settings: Settings, *, db: Database | None = None) -> None:
        self.settings = settings
        self.db = db or Database(settings)
        self.tasks = Spawner()
        self.senders = Senders()
        self.actions = Actions()
        self.events = EventLedger(self.db)
        self.alert_rules = AlertRules(
            self.db, self.senders, actor="platform", default_timezone=settings.default_timezone
        )
        self.alert_evaluator = AlertEvaluator(self.db, self.senders)
        self.embedder: Embedder | None = None
        self.claude: Claude | None = None
        self._conversation: ConversationService | None = None
        self.scheduler: Scheduler | None = None

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
            if self.settings.scheduler_enabled:
                # Imported here: commands that never run the loop need not load APScheduler.
                from scheduler.service import Scheduler

                self.scheduler = Scheduler(self)
                self.scheduler.start()
                self._schedule_alert_evaluation(self.scheduler)
        except BaseException:
            await self.stop()
            raise

    def _schedule_alert_evaluation(self, scheduler: Scheduler) -> None:
        """Alert rules are looked at every scheduler tick; each rule is evaluated only when its
        own interval is due, once across replicas (bot/alerts/evaluator.py)."""
        from apscheduler.triggers.interval import IntervalTrigger

        async def evaluate() -> dict[str, int]:
            evaluated = await self.alert_evaluator.run_due()
            return {"evaluated": evaluated} if evaluated else {}

        scheduler.add_job(
            "alerts.evaluate",
            evaluate,
            IntervalTrigger(seconds=self.settings.scheduler_tick_seconds),
            quiet=True,
        )

    async def stop(self) -> None:
        """Finish background work (bounded), then close clients and the database."""
        if self.scheduler is not None:
            await self.scheduler.stop()
            self.scheduler = None
        await self.tasks.close(grace_seconds=SHUTDOWN_GRACE_SECONDS)
        if self.claude is not None:
            await self.claude.aclose()
        if self.embedder is not None:
            await self.embedder.aclose()
        await self.db.stop()
