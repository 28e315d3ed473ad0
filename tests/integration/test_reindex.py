"""The database knows which embedder made its vectors, and `reindex` moves it to another one:
from `hash` at 384 dimensions to the default, minilm at 384, or to wordllama at 256 (the columns
changing size), losing nothing, resumably, while the service keeps answering with its old
settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import asyncpg
import numpy as np
import pytest

from bot.conversation import ConversationService
from bot.embeddings import Embedder, EmbeddingError, HashEmbedder
from bot.ingest import ingest
from bot.ingest.pipeline import passage_text
from bot.memory import Memories
from bot.messages import IncomingMessage
from bot.reindex import reindex
from bot.settings import Settings, load_settings
from bot.static_embeddings import MiniLMEmbedder, WordLlamaEmbedder
from storage import memories as memory_rows
from storage import meta
from storage.database import Database
from storage.errors import SchemaMismatch
from storage.meta import EmbeddingSpace
from tests.support import TEST_DIMENSION
from tests.support.factories import add_user

HASH = HashEmbedder(TEST_DIMENSION)
HASHED = EmbeddingSpace("hash", "features-v1", TEST_DIMENSION)
DEFAULT = EmbeddingSpace("minilm", "all-MiniLM-L6-v2-int8", 384)
WORDLLAMA = EmbeddingSpace("wordllama", "l2_supercat", 256)

HANDBOOKS = {
    "leave.md": """# Leave policy

## Annual leave

Every employee is entitled to 28 days of paid vacation per calendar year. Unused days may be
carried over until March.

## Sick leave

Report sickness to your manager before 10:00 on the first day and send a doctor's note from the
third day.
""",
    "accounts.md": """# IT accounts

## Password reset

Reset your credentials on the self-service account recovery page; the service desk unlocks
accounts after three failed attempts.
""",
    "expenses.md": """# Travel expenses

## Reimbursement

Travel costs are reimbursed when receipts are submitted within 30 days through the finance
portal.
""",
}
FACTS = ["Works at the Lyon office", "Prefers answers in French", "Manages the payroll team"]


def dm(text: str) -> IncomingMessage:
    return IncomingMessage(
        platform="slack", user_id="U-ANA", conversation_id="D-ANA", text=text, is_direct=True
    )


@pytest.fixture
async def populated(db: Database, tmp_path: Path) -> int:
    """Handbooks and memories embedded with `hash`; returns the user's id."""
    folder = tmp_path / "handbooks"
    folder.mkdir()
    for name, text in HANDBOOKS.items():
        (folder / name).write_text(text)
    report = await ingest(db, HASH, "default", [folder], "general", progress=False)
    assert len(report.added) == len(HANDBOOKS)
    user_id = await add_user(db, "ana@example.com", [], slack_id="U-ANA")
    for fact in FACTS:
        await Memories(db, HASH).remember(1, user_id, fact)
    return user_id


def default_settings(settings: Settings) -> Settings:
    """The test database with the default embedder (minilm, 384)."""
    assert settings.database_url is not None
    return load_settings(
        env_file=None,
        database_url=settings.database_url.get_secret_value(),
        deskmate_data_dir=settings.deskmate_data_dir,
        scheduler_enabled=False,
    )


@pytest.fixture
async def unchecked(settings: Settings) -> AsyncIterator[Database]:
    """The test database opened for the default embedder as `deskmate reindex` opens it."""
    database = Database(default_settings(settings).database)
    await database.start(check_embeddings=False)
    yield database
    await database.stop()


async def rows(db: Database, sql: str) -> list[asyncpg.Record]:
    async with db.pool.acquire() as conn:
        return await conn.fetch(sql)


CHUNKS = """
    SELECT c.id, d.title, c.section_title, c.content, c.embedding
    FROM document_chunks c JOIN documents d ON d.id = c.document_id ORDER BY c.id
"""
MEMORIES = "SELECT id, content, is_active, embedding FROM memories ORDER BY id"
VECTOR_COLUMNS = """
    SELECT attrelid::regclass::text AS t, format_type(atttypid, atttypmod) AS type, attnotnull,
           attstorage
    FROM pg_attribute
    WHERE attrelid IN ('document_chunks'::regclass, 'memories'::regclass)
      AND attname LIKE 'embedding%' AND NOT attisdropped
    ORDER BY 1
"""
VECTOR_INDEXES = """
    SELECT indexname, indexdef FROM pg_indexes
    WHERE tablename IN ('document_chunks', 'memories') AND indexdef LIKE '%(embedding %'
    ORDER BY 1
"""


async def assert_every_vector_is_embedded_by(db: Database, embedder: Embedder) -> None:
    chunks = await rows(db, CHUNKS)
    expected = await embedder.embed_documents(
        [passage_text(r["title"], r["section_title"], r["content"]) for r in chunks]
    )
    for row, vector in zip(chunks, expected, strict=True):
        assert np.allclose(row["embedding"].to_numpy(), vector, atol=1e-5), row["id"]
    for row in await rows(db, MEMORIES):
        vector = await embedder.embed_query(row["content"])
        assert np.allclose(row["embedding"].to_numpy(), vector, atol=1e-5), row["id"]


# --- the recorded embedder ---------------------------------------------------------------------


async def test_a_new_database_records_the_configured_embedder(
    fresh_database: str, tmp_path: Path
) -> None:
    settings = load_settings(env_file=None, database_url=fresh_database, deskmate_data_dir=tmp_path)
    database = Database(settings.database)
    await database.start()
    try:
        async with database.pool.acquire() as conn:
            recorded = await meta.recorded_space(conn, unrecorded=("?", "?"))
            column = await conn.fetchval(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = 'document_chunks'::regclass AND attname = 'embedding'"
            )
    finally:
        await database.stop()
    assert recorded == DEFAULT
    assert column == "vector(384)"


async def test_another_embedder_is_refused_with_a_message_naming_reindex(
    populated: int, settings: Settings
) -> None:
    database = Database(default_settings(settings).database)
    with pytest.raises(SchemaMismatch) as caught:
        await database.start()
    await database.stop()
    message = str(caught.value)
    assert message == (
        "the database holds vectors of hash features-v1 (384 dimensions) but the settings ask "
        "for minilm all-MiniLM-L6-v2-int8 (384 dimensions): run `deskmate reindex` to re-embed "
        "everything with the configured embedder, or set EMBEDDING_PROVIDER=hash "
        "EMBEDDING_MODEL=features-v1 EMBEDDING_DIMENSION=384 to use the database as it is"
    )


async def test_the_same_size_from_another_provider_is_refused_too(
    fresh_database: str, tmp_path: Path
) -> None:
    hashed = load_settings(
        env_file=None,
        database_url=fresh_database,
        deskmate_data_dir=tmp_path,
        embedding_provider="hash",
        embedding_dimension=DEFAULT.dimension,
    )
    database = Database(hashed.database)
    await database.start()
    user_id = await add_user(database, "ana@example.com")
    await Memories(database, HashEmbedder(DEFAULT.dimension)).remember(
        1, user_id, "Works at the Lyon office"
    )
    await database.stop()
    default = Database(default_settings(hashed).database)
    with pytest.raises(SchemaMismatch, match="deskmate reindex"):
        await default.start()
    await default.stop()


async def test_a_database_that_recorded_only_its_size_holds_hash_vectors(
    populated: int, db: Database, settings: Settings
) -> None:
    # As a database from before the embedder was recorded: only embedding_dimension.
    async with db.pool.acquire() as conn:
        await conn.execute(
            "DELETE FROM deskmate_meta WHERE key IN ('embedding_provider', 'embedding_model')"
        )
    default = Database(default_settings(settings).database)
    with pytest.raises(SchemaMismatch, match=r"holds vectors of hash features-v1 \(384"):
        await default.start()
    await default.stop()
    # With hash configured (as it was, by default, back then) it starts, and records hash.
    again = Database(settings.database)
    await again.start()
    async with again.pool.acquire() as conn:
        recorded = await meta.recorded_space(conn, unrecorded=("?", "?"))
    await again.stop()
    assert recorded == HASHED


# --- reindex -----------------------------------------------------------------------------------


async def test_reindex_to_the_default_loses_nothing_and_answers_a_paraphrase(
    populated: int, db: Database, unchecked: Database, settings: Settings
) -> None:
    chunks_before = [(r["id"], r["content"]) for r in await rows(db, CHUNKS)]
    memories_before = [(r["id"], r["content"], r["is_active"]) for r in await rows(db, MEMORIES)]
    columns_before = await rows(db, VECTOR_COLUMNS)
    indexes_before = await rows(db, VECTOR_INDEXES)
    assert [c["type"] for c in columns_before] == ["vector(384)", "vector(384)"]
    assert indexes_before  # at least the chunks' HNSW index

    report = await reindex(unchecked, MiniLMEmbedder(), DEFAULT, batch_size=2, progress=False)

    assert (report.before, report.after, report.resumed) == (HASHED, DEFAULT, False)
    assert (report.chunks, report.memories) == (len(chunks_before), len(FACTS))
    assert [(r["id"], r["content"]) for r in await rows(unchecked, CHUNKS)] == chunks_before
    memories_after = await rows(unchecked, MEMORIES)
    assert [(r["id"], r["content"], r["is_active"]) for r in memories_after] == memories_before
    await assert_every_vector_is_embedded_by(unchecked, MiniLMEmbedder())
    async with unchecked.pool.acquire() as conn:
        assert await meta.recorded_space(conn, unrecorded=("?", "?")) == DEFAULT
        triggers = await conn.fetchval(
            "SELECT count(*) FROM pg_trigger WHERE tgname LIKE '%reindex%'"
        )
    assert triggers == 0
    # The same columns (of the default's 384 dimensions, as hash's were here; another size is
    # the next test's), stored alike, with the same indexes on them.
    columns = await rows(unchecked, VECTOR_COLUMNS)
    assert [(c["t"], c["type"], c["attnotnull"]) for c in columns] == [
        ("document_chunks", "vector(384)", True),
        ("memories", "vector(384)", True),
    ]
    assert [c["attstorage"] for c in columns] == [c["attstorage"] for c in columns_before]
    assert [tuple(i) for i in await rows(unchecked, VECTOR_INDEXES)] == [
        tuple(i) for i in indexes_before
    ]

    # The service starts with the new settings (and no longer with the old), and finds the
    # passage a question in other words is about: "login" and "forgot" appear in no handbook.
    await assert_refused(settings.database)
    new_settings = default_settings(settings)
    service_db = Database(new_settings.database)
    await service_db.start()
    try:
        service = ConversationService(new_settings, service_db, MiniLMEmbedder())
        reply = await service.handle(dm("I forgot my login, what now?"))
    finally:
        await service_db.stop()
    assert [s.label for s in reply.sources][:1] == ["IT accounts › Password reset"]

    again = await reindex(unchecked, MiniLMEmbedder(), DEFAULT, progress=False)
    assert not again.changed
    assert again.summary() == (
        "nothing to re-embed: the vectors are already minilm all-MiniLM-L6-v2-int8 (384 dimensions)"
    )


async def test_reindex_to_another_size_resizes_the_columns_and_keeps_their_indexes(
    populated: int, db: Database, unchecked: Database
) -> None:
    chunks_before = [(r["id"], r["content"]) for r in await rows(db, CHUNKS)]
    columns_before = await rows(db, VECTOR_COLUMNS)
    indexes_before = await rows(db, VECTOR_INDEXES)
    assert [c["type"] for c in columns_before] == ["vector(384)", "vector(384)"]

    embedder = WordLlamaEmbedder()
    report = await reindex(unchecked, embedder, WORDLLAMA, batch_size=2, progress=False)

    assert (report.before, report.after) == (HASHED, WORDLLAMA)
    assert (report.chunks, report.memories) == (len(chunks_before), len(FACTS))
    assert [(r["id"], r["content"]) for r in await rows(unchecked, CHUNKS)] == chunks_before
    await assert_every_vector_is_embedded_by(unchecked, embedder)
    # The same columns (now of 256 dimensions, stored alike) with the same indexes on them.
    columns = await rows(unchecked, VECTOR_COLUMNS)
    assert [(c["t"], c["type"], c["attnotnull"]) for c in columns] == [
        ("document_chunks", "vector(256)", True),
        ("memories", "vector(256)", True),
    ]
    assert [c["attstorage"] for c in columns] == [c["attstorage"] for c in columns_before]
    assert [tuple(i) for i in await rows(unchecked, VECTOR_INDEXES)] == [
        tuple(i) for i in indexes_before
    ]


async def assert_refused(config: object) -> None:
    database = Database(config)  # type: ignore[arg-type]
    with pytest.raises(SchemaMismatch, match="deskmate reindex"):
        await database.start()
    await database.stop()


class StopsAfter:
    """The default embedder, failing once it has embedded `limit` texts (a run killed midway);
    counts what it embedded."""

    def __init__(self, limit: int | None = None) -> None:
        self.inner = MiniLMEmbedder()
        self.dimension = self.inner.dimension
        self.limit = limit
        self.texts: list[str] = []

    def _count(self, texts: Sequence[str]) -> None:
        if self.limit is not None and len(self.texts) + len(texts) > self.limit:
            raise EmbeddingError("the embedding server went away")
        self.texts += texts

    async def embed_documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        self._count(texts)
        return await self.inner.embed_documents(texts)

    async def embed_query(self, text: str) -> np.ndarray:
        self._count([text])
        return await self.inner.embed_query(text)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_stopped_reindex_continues_while_the_service_answers(
    populated: int, db: Database, unchecked: Database, settings: Settings
) -> None:
    chunk_count = len(await rows(db, CHUNKS))
    # Every chunk and the first memory get their new vector, then the embedder fails.
    stopped = StopsAfter(limit=chunk_count + 1)
    with pytest.raises(EmbeddingError, match=r"kept: run `deskmate reindex` again to continue"):
        await reindex(unchecked, stopped, DEFAULT, batch_size=1, progress=False)
    first_memory, *_ = await rows(db, MEMORIES)
    assert stopped.texts[-1] == first_memory["content"]

    # Meanwhile the service, still on hash, answers, changes the first memory and adds one.
    service = ConversationService(settings, db, HASH)
    await service.handle(dm("remember that my badge number is 4711"))
    reply = await service.handle(dm("How many vacation days do I get?"))
    assert "Leave policy" in [s.title for s in reply.sources]
    async with db.pool.acquire() as conn:
        changed = "Works at the Berlin office"
        vector = await HASH.embed_query(changed)
        await memory_rows.update(
            conn, 1, populated, first_memory["id"], memory_rows.NewMemory(changed, vector)
        )

    resumed = StopsAfter()
    report = await reindex(unchecked, resumed, DEFAULT, batch_size=1, progress=False)
    memories = await rows(unchecked, MEMORIES)
    assert report.resumed
    assert report.chunks == 0  # all done before the stop
    # The changed memory again, the two never reached, and the one added meanwhile.
    assert sorted(resumed.texts) == sorted(r["content"] for r in memories)
    assert report.memories == len(memories) == len(FACTS) + 1
    await assert_every_vector_is_embedded_by(unchecked, MiniLMEmbedder())


async def test_going_back_to_the_recorded_embedder_abandons_a_stopped_run(
    populated: int, db: Database, unchecked: Database
) -> None:
    with pytest.raises(EmbeddingError):
        await reindex(unchecked, StopsAfter(limit=1), DEFAULT, batch_size=1, progress=False)
    # The operator gives the change up: reindex with the settings the database was made with.
    report = await reindex(db, HASH, HASHED, progress=False)
    assert not report.changed
    staging = await rows(
        db,
        "SELECT attname FROM pg_attribute WHERE attname = 'embedding_next' AND NOT attisdropped "
        "UNION ALL SELECT tgname FROM pg_trigger WHERE tgname LIKE '%reindex%' "
        "UNION ALL SELECT key FROM deskmate_meta WHERE key = 'reindex_target'",
    )
    assert staging == []


async def test_reindexing_a_new_database_has_nothing_to_do(
    fresh_database: str, tmp_path: Path
) -> None:
    settings = load_settings(env_file=None, database_url=fresh_database, deskmate_data_dir=tmp_path)
    database = Database(settings.database)
    await database.start(check_embeddings=False)  # as `deskmate reindex` does
    try:
        report = await reindex(database, MiniLMEmbedder(), DEFAULT, progress=False)
        async with database.pool.acquire() as conn:
            recorded = await meta.recorded_space(conn, unrecorded=("?", "?"))
    finally:
        await database.stop()
    assert report.summary().startswith("nothing to re-embed")
    assert recorded == DEFAULT
