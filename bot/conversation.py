"""The conversation service: IncomingMessage → Reply, the same for every platform (SPEC §4).

session → store the question → retrieve → answer (Claude, or quoted passages offline) → record,
then memory extraction off the reply path.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import zoneinfo
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot import metrics, offline, prompts
from bot.alerts.rules import AlertRules
from bot.budgets import EXHAUSTED_REASON, Budgets
from bot.command_replies import CommandTools, run_command
from bot.commands import Command, parse_command
from bot.embeddings import Embedder, measured
from bot.errors import DeskmateError, new_reference, report_error
from bot.identity import resolve_user
from bot.llm import Claude, Completion, LLMError
from bot.memory import Memories
from bot.messages import IncomingMessage, Reply, ReplyStatus, Source
from bot.relevance import RelevanceGate, diverse
from bot.schedules import Schedules
from bot.settings import Settings
from bot.spawner import Spawner
from bot.turn_records import record_turn
from bot.turns import Retrieved, Turn
from storage import retrieval, sessions
from storage.database import Database
from storage.memories import Memory
from storage.retrieval import ChunkHit
from storage.schedules import Schedule
from storage.users import User

logger = logging.getLogger("deskmate.conversation")

DeltaCallback = Callable[[str], Awaitable[None]]
Clock = Callable[[], dt.datetime]

CHUNKS_IN_PROMPT = 6
MEMORIES_IN_PROMPT = 5
HISTORY_BUDGET_TOKENS = 3000
# What of a message is searched: its beginning. A pasted log of a megabyte says what it is about
# in its first lines, and every arm's cost (and PostgreSQL's parser depth) grows with the text.
SEARCH_TEXT_CHARS = 4000
APOLOGY = (
    "Sorry — I couldn't get an answer from the language model just now. Your message is saved; "
    "please try again in a minute. (reference {reference})"
)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Home:
    memories: list[Memory]
    schedules: list[Schedule]
    firing_alerts: list[tuple[str, str]]  # rule name, severity


class ConversationService:
    """Answers messages; one instance per process, shared by every platform."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        embedder: Embedder,
        *,
        claude: Claude | None = None,
        tasks: Spawner | None = None,
        clock: Clock = utc_now,
        alerts: AlertRules | None = None,
        schedules: Schedules | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self.embedder = measured(embedder)
        self.claude = claude
        self.tasks = tasks or Spawner()
        self.clock = clock
        self.memories = Memories(db, self.embedder)
        self.relevance = RelevanceGate(settings)
        self.budgets = Budgets(db, settings, clock=clock)
        self.alerts = alerts
        self.schedules = schedules
        self.commands = CommandTools(self.memories, self.retrieve, schedules, alerts)

    async def handle(
        self, message: IncomingMessage, on_delta: DeltaCallback | None = None
    ) -> Reply:
        """Answer one message. The question is committed before any model is called."""
        started = time.perf_counter()
        status = ReplyStatus.ERROR.value  # unless a reply says otherwise
        try:
            reply = await self._handle(message, on_delta)
            status = reply.status.value
            return reply
        finally:
            seconds = time.perf_counter() - started
            metrics.ANSWERS.labels(platform=message.platform, status=status).inc()
            metrics.ANSWER_SECONDS.labels(platform=message.platform).observe(seconds)
            logger.info("%s message replied to: %s in %.2f s", message.platform, status, seconds)

    async def _handle(self, message: IncomingMessage, on_delta: DeltaCallback | None) -> Reply:
        turn = await self._begin(message)
        command = parse_command(message.text)
        try:
            if command is not None:
                reply = await self._command(turn, command)
            else:
                reply = await self._answer(turn, on_delta)
        except Exception as exc:  # the person gets one short sentence, the log gets the rest
            reference = report_error(exc, where="conversation")
            reply = await self._record_failure(turn, reference)
        if on_delta is not None and reply.status is not ReplyStatus.ANSWERED:
            await on_delta(reply.text)
        return reply

    async def home_of(self, message: IncomingMessage) -> Home:
        """A person's overview: their memories, the schedules they made, the firing alerts."""
        tenant_id, user = await resolve_user(self.db, message, self.settings.default_timezone)
        memories = await self.memories.listing(tenant_id, user.id)
        schedules = []
        if self.schedules is not None:
            schedules = [
                summary.schedule
                for summary in await self.schedules.listing(message.tenant)
                if summary.schedule.created_by == user.email
            ]
        alerts = await self.alerts.history(message.tenant, firing_only=True) if self.alerts else []
        return Home(memories, schedules, [(rule.name, rule.severity) for rule, _ in alerts])

    def session_day(self, user: User) -> dt.date:
        """The person's local date now: a conversation keeps one session per local day
        (SPEC §4.2), in the person's time zone (UTC when it is unknown)."""
        return self.clock().astimezone(_zone(user.timezone)).date()

    async def _begin(self, message: IncomingMessage) -> Turn:
        tenant_id, user = await resolve_user(self.db, message, self.settings.default_timezone)
        today = self.session_day(user)
        key = sessions.SessionKey(
            tenant_id, user.id, message.platform, message.conversation_key, today
        )
        async with self.db.pool.acquire() as conn:
            stored = await sessions.open_and_append(
                conn, key, content=message.text, platform_message_id=message.message_id,
                metadata={"channel": message.conversation_id, "thread": message.thread_id},
            )  # fmt: skip
        return Turn(message, tenant_id, user, stored.session_id, stored.sequence_number, today,
                    time.perf_counter())  # fmt: skip

    async def retrieve(self, turn: Turn, text: str) -> Retrieved:
        """Memories (direct messages only) and readable chunks for `text`."""
        text = text[:SEARCH_TEXT_CHARS]
        started = time.perf_counter()
        vector = await self.embedder.embed_query(text)
        embed_ms = (time.perf_counter() - started) * 1000
        reader = turn.reader(self.settings.public_departments)
        async with self.db.pool.acquire() as conn:
            # Every arm ranks freely; the relevance gate decides afterwards what is about it.
            found, memories = await retrieval.search(
                conn, reader, vector, text, limit=2 * CHUNKS_IN_PROMPT, min_similarity=-1.0,
                memory_limit=MEMORIES_IN_PROMPT if turn.message.is_direct else 0,
                memory_min_similarity=self.relevance.memory_similarity,
                fusion=self.relevance.fusion,
            )  # fmt: skip
        remembered = memories.items if memories else []
        passages = diverse(self.relevance.passages(found.items), CHUNKS_IN_PROMPT)
        _observe_search(found.milliseconds, memories.milliseconds if memories else None, passages)
        return Retrieved(
            passages,
            remembered,
            {
                "embed_ms": embed_ms, "chunk_search_ms": found.milliseconds,
                "memory_search_ms": memories.milliseconds if memories else None,
                "top_chunk_score": passages[0].similarity if passages else None,
                "top_memory_score": remembered[0].relevance if remembered else None,
            },
        )  # fmt: skip

    async def _answer(self, turn: Turn, on_delta: DeltaCallback | None) -> Reply:
        question = turn.message.text
        found = await self.retrieve(turn, question)
        reason = await self._offline_reason(turn)
        if reason is not None or self.claude is None:
            text = offline.compose(question, found.chunks, found.memories,
                                   reason=reason or offline.NO_MODEL)  # fmt: skip
            sources = _sources(found.chunks, range(1, min(offline.QUOTED, len(found.chunks)) + 1))
            return await self._record(turn, text, ReplyStatus.OFFLINE, sources, found, None)
        async with self.db.pool.acquire() as conn:
            earlier = await sessions.history(
                conn, turn.tenant_id, turn.session_id, before_sequence=turn.sequence_number
            )
        context = prompts.render_context(
            found.chunks, found.memories, display_name=turn.user.display_name, today=turn.today,
            in_channel=not turn.message.is_direct,
        )  # fmt: skip
        try:
            completion = await self.claude.stream(
                system=prompts.system_blocks(context),
                messages=prompts.conversation(earlier, question,
                                              budget_tokens=HISTORY_BUDGET_TOKENS),
                on_delta=on_delta,
            )  # fmt: skip
        except LLMError as exc:
            reference = new_reference()
            logger.warning(
                "LLM failed after %d attempts (ref %s): %s", exc.attempts, reference, exc
            )
            return await self._record(
                turn,
                APOLOGY.format(reference=reference),
                ReplyStatus.ERROR,
                (),
                found,
                None,
                error=exc,
                reference=reference,
            )
        cited = prompts.cited_numbers(completion.text, len(found.chunks))
        reply = await self._record(
            turn,
            completion.text,
            ReplyStatus.ANSWERED,
            _sources(found.chunks, cited),
            found,
            completion,
        )
        if turn.message.is_direct:
            self.tasks.spawn(
                self.memories.extract(self.claude, turn.tenant_id, turn.user.id, question,
                                      completion.text),
                name=f"memory-extraction:{turn.user.id}",
            )  # fmt: skip
        return reply

    async def _offline_reason(self, turn: Turn) -> str | None:
        """Why this answer quotes the documents instead of asking Claude; None when it may ask."""
        if self.claude is None:
            return offline.NO_MODEL
        spent = await self.budgets.exhausted(turn.tenant_id, turn.user.id)
        if spent is None:
            return None
        whose = "the organisation's" if spent.user_id is None else f"user {spent.user_id}'s"
        logger.info("%s monthly LLM budget is used up: answering offline", whose)
        return EXHAUSTED_REASON

    async def _command(self, turn: Turn, command: Command) -> Reply:
        try:
            text, chunks = await run_command(self.commands, turn, command)
        except DeskmateError as exc:  # a command used wrongly: the error is the answer
            text, chunks = str(exc), []
        sources = _sources(chunks, range(1, len(chunks) + 1))
        found = Retrieved(chunks, [], {})
        return await self._record(turn, text, ReplyStatus.COMMAND, sources, found, None)

    async def _record_failure(self, turn: Turn, reference: str) -> Reply:
        text = APOLOGY.format(reference=reference)
        try:
            return await self._record(
                turn, text, ReplyStatus.ERROR, (), Retrieved([], [], {}), None, reference=reference
            )
        except Exception as exc:  # the database itself may be what failed
            report_error(exc, where="conversation.record")
            return Reply(text, ReplyStatus.ERROR, reference=reference, session_id=turn.session_id)

    async def _record(
        self,
        turn: Turn,
        text: str,
        status: ReplyStatus,
        sources: tuple[Source, ...],
        found: Retrieved,
        completion: Completion | None,
        *,
        error: LLMError | None = None,
        reference: str | None = None,
    ) -> Reply:
        model = self.claude.model if self.claude else "unknown"
        message_id = await record_turn(self.db, model, turn, text, status, sources, found,
                                       completion, error=error, reference=reference)  # fmt: skip
        return Reply(
            text=text, status=status, sources=sources, reference=reference,
            session_id=turn.session_id, message_id=message_id,
            memories_used=tuple(m.memory.content for m in found.memories),
            ephemeral=status is ReplyStatus.COMMAND,
        )  # fmt: skip


def _sources(chunks: list[ChunkHit], numbers: range | list[int]) -> tuple[Source, ...]:
    return tuple(
        Source(number=n, title=chunks[n - 1].title, section=chunks[n - 1].section_title,
               department=chunks[n - 1].department, document_id=chunks[n - 1].document_id,
               chunk_id=chunks[n - 1].chunk_id, excerpt=chunks[n - 1].content[:300])
        for n in numbers
    )  # fmt: skip


def _observe_search(chunks_ms: float, memories_ms: float | None, passages: list[ChunkHit]) -> None:
    metrics.RETRIEVAL_SECONDS.labels(arm="chunks").observe(chunks_ms / 1000)
    if memories_ms is not None:
        metrics.RETRIEVAL_SECONDS.labels(arm="memories").observe(memories_ms / 1000)
    if not passages:
        metrics.RETRIEVAL_NO_ANSWER.inc()


def _zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")
