"""Retrieval: hybrid ranking, meaning, filtered HNSW scans at scale, row-level security."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Sequence
from typing import ClassVar

import asyncpg
import numpy as np
import pytest

from bot.embeddings import HashEmbedder
from bot.relevance import RelevanceGate
from bot.settings import load_settings
from bot.static_embeddings import MiniLMEmbedder
from storage.database import Database
from storage.migrate import apply_migrations
from storage.retrieval import (
    _CHUNKS,
    HNSW_EF_SEARCH,
    HNSW_EF_SEARCH_FILTERED,
    ChunkHit,
    Fusion,
    Reader,
    Scope,
    _enter_reader_role,
    chunk_arguments,
    chunks_sql,
    search_chunks,
    search_memories,
)
from tests.support import TEST_DIMENSION
from tests.support.factories import add_document, add_user

HASH = HashEmbedder(TEST_DIMENSION)


class ConceptEmbedder:
    """A test provider that encodes meaning: words map to concepts, so "maternity time off"
    and "parental leave" land together although they share no word."""

    CONCEPTS: ClassVar[dict[str, set[str]]] = {
        "family": {"parental", "maternity", "paternity", "baby", "newborn", "birth"},
        "absence": {"leave", "time", "off", "holiday", "vacation", "absence"},
        "money": {"salary", "pay", "bonus", "commission", "euro", "eur"},
        "travel": {"train", "flight", "hotel", "trip", "travel"},
    }

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension

    def embed(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dimension, dtype=np.float32)
        for word in re.findall(r"\w+", text.lower()):
            for index, members in enumerate(self.CONCEPTS.values()):
                if word in members:
                    vector[index] += 1.0
        vector[-1] = 0.05  # never a zero vector
        return vector / np.linalg.norm(vector)

    async def embed_documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [self.embed(t) for t in texts]

    async def embed_query(self, text: str) -> np.ndarray:
        return self.embed(text)

    async def aclose(self) -> None:
        return None


def dm_reader(user_id: int) -> Reader:
    return Reader(1, user_id, "slack", None, ("general",))


async def test_an_exact_rare_term_is_found_though_hash_similarity_ranks_it_low(
    db: Database,
) -> None:
    user = await add_user(db, "ana@example.com", ["sales"])
    # Twelve passages about parkas and discounts outrank the one that names the form…
    for i in range(12):
        await add_document(
            db,
            HASH,
            "sales",
            f"Parka guide {i}",
            {"Parkas": f"Tundra parka discount rules, edition {i}, parka sizes."},
        )
    target = await add_document(
        db, HASH, "sales", "Forms", {"Exceptions": "Requests go through SALES-F07 in the portal."}
    )
    question = "Tundra parka discount rules: SALES-F07?"
    vector = await HASH.embed_query(question)
    async with db.pool.acquire() as conn:
        by_meaning_only = await conn.fetch(
            "SELECT document_id FROM document_chunks ORDER BY embedding <=> $1 LIMIT 5", vector
        )
        found = await search_chunks(conn, dm_reader(user), vector, question, limit=5)
    assert target not in [r["document_id"] for r in by_meaning_only]  # hash alone misses it
    assert found.items[0].document_id == target  # the rare term wins the fused ranking
    assert found.items[0].text_match


async def test_meaning_finds_a_passage_that_shares_no_word(db: Database) -> None:
    concepts = ConceptEmbedder(TEST_DIMENSION)
    user = await add_user(db, "ana@example.com", ["hr"])
    leave = await add_document(
        db,
        concepts,
        "hr",
        "Leave policy",
        {"Parental leave": "Sixteen weeks fully paid for the primary carer."},
    )
    await add_document(db, concepts, "hr", "Travel", {"Trains": "Take the train under four hours."})
    question = "How much maternity time off?"
    async with db.pool.acquire() as conn:
        found = await search_chunks(
            conn,
            dm_reader(user),
            await concepts.embed_query(question),
            question,
            limit=1,
            min_similarity=0.3,
        )
    assert [hit.document_id for hit in found.items] == [leave]
    assert not found.items[0].text_match  # found by meaning, not by words


async def test_memories_rank_by_similarity_and_importance(db: Database) -> None:
    user = await add_user(db, "ana@example.com", ["sales"])
    other = await add_user(db, "bo@example.com", ["sales"])
    async with db.pool.acquire() as conn:
        for owner, content, importance in [
            (user, "Manages the Berlin warehouse team", 0.2),
            (user, "Manages the Berlin warehouse budget", 0.9),
            (user, "Likes green tea", 1.0),
            (other, "Manages the Berlin warehouse too", 1.0),
        ]:
            await conn.execute(
                "INSERT INTO memories (tenant_id, user_id, content, embedding, importance) "
                "VALUES (1, $1, $2, $3, $4)",
                owner,
                content,
                await HASH.embed_query(content),
                importance,
            )
        found = await search_memories(
            conn, dm_reader(user), await HASH.embed_query("Berlin warehouse"), limit=2
        )
    contents = [m.memory.content for m in found.items]
    assert contents == ["Manages the Berlin warehouse budget", "Manages the Berlin warehouse team"]
    first = found.items[0]
    assert first.relevance == pytest.approx(0.7 * first.similarity + 0.3 * 0.9, abs=1e-5)


# --- scale: a department holding 2% of 20,000 chunks ------------------------------------------

SMALL_DIMENSION = 16


@pytest.fixture
async def big_db(fresh_database: str, tmp_path) -> AsyncIterator[Database]:  # type: ignore[no-untyped-def]
    """20,000 chunks, 400 of them in `rare`; small vectors keep the HNSW build quick.

    The department index is dropped: with it the planner reads the 400 rows exactly (as it
    should), and this test is about the HNSW path a filter that the index cannot serve takes."""
    conn = await asyncpg.connect(fresh_database)
    await apply_migrations(conn, embedding_dimension=SMALL_DIMENSION)
    await conn.close()
    settings = load_settings(
        env_file=None,
        database_url=fresh_database,
        deskmate_data_dir=tmp_path,
        embedding_provider="hash",
        embedding_dimension=SMALL_DIMENSION,
    )
    db = Database(settings.database)
    await db.start()
    rng = np.random.default_rng(42)
    async with db.pool.acquire() as conn:
        await conn.execute("DROP INDEX document_chunks_department")
        await conn.execute("DROP INDEX document_chunks_embedding")  # built once, after the load
        await conn.execute(
            "INSERT INTO documents (tenant_id, department, source_path, title, "
            "status) VALUES (1, 'bulk', '/bulk', 'Bulk', 'ready')"
        )
        records = [
            (
                1,
                1,
                "rare" if i % 50 == 0 else "common",
                f"Section {i}",
                i,
                f"passage {i}",
                3,
                rng.standard_normal(SMALL_DIMENSION).astype(np.float32),
            )
            for i in range(20_000)
        ]
        await conn.copy_records_to_table(
            "document_chunks",
            records=records,
            columns=[
                "tenant_id",
                "document_id",
                "department",
                "section_title",
                "chunk_index",
                "content",
                "token_count",
                "embedding",
            ],
        )
        await conn.execute(
            "CREATE INDEX document_chunks_embedding ON document_chunks "
            "USING hnsw (embedding vector_cosine_ops)"
        )
        await conn.execute("ANALYZE document_chunks")
    yield db
    await db.stop()


async def test_filtered_search_over_a_small_department_still_returns_k_rows(
    big_db: Database,
) -> None:
    user = await add_user(big_db, "rare@example.com", ["rare"])
    reader = Reader(1, user, "slack", None, ())
    query = np.random.default_rng(7).standard_normal(SMALL_DIMENSION).astype(np.float32)
    arguments = chunk_arguments(reader, query, "", limit=10, candidates=40, min_similarity=-1.0)
    async with big_db.pool.acquire() as conn:
        found = await search_chunks(conn, reader, query, "", limit=10, candidates=40)
        plan = await conn.fetch("EXPLAIN " + _CHUNKS, *arguments)
        # The same HNSW scan without iterative scans hands back ef_search candidates, ~2% of
        # which pass the filter: it comes back short. That is what this test guards against.
        async with conn.transaction():
            await conn.execute("SET LOCAL hnsw.iterative_scan = off")
            plain = await conn.fetch(
                "SELECT id FROM document_chunks WHERE department = 'rare' "
                "ORDER BY embedding <=> $1 LIMIT 40",
                query,
            )
    assert any("Index Scan using document_chunks_embedding" in r[0] for r in plan)
    assert len(plain) < 40
    assert len(found.items) == 10
    assert all(hit.department == "rare" for hit in found.items)


# --- the second wall ---------------------------------------------------------------------------


async def _as_reader(conn: asyncpg.Connection, settings: dict[str, str]) -> list[str]:
    async with conn.transaction():
        for name, value in settings.items():
            await conn.execute("SELECT set_config($1, $2, true)", name, value)
        await conn.execute("SET LOCAL ROLE deskmate_reader")
        rows = await conn.fetch("SELECT department FROM document_chunks ORDER BY department")
    return [r["department"] for r in rows]


async def test_row_level_security_admits_only_readable_chunks(db: Database) -> None:
    for department in ("general", "sales", "hr"):
        await add_document(db, HASH, department, department.title(), {"S": f"{department} text"})
    await add_document(db, HASH, "finance", "Shared", {"S": "shared text"}, access=["sales"])
    base = {"deskmate.tenant_id": "1", "deskmate.user_id": "1", "deskmate.super_user": "off"}
    async with db.pool.acquire() as conn:
        nothing = await _as_reader(conn, {})
        dm = await _as_reader(
            conn,
            base | {"deskmate.user_departments": "sales,general", "deskmate.in_channel": "off"},
        )
        channel = await _as_reader(
            conn,
            base
            | {
                "deskmate.user_departments": "sales,general",
                "deskmate.in_channel": "on",
                "deskmate.channel_departments": "general",
            },
        )
        other_tenant = await _as_reader(
            conn,
            base
            | {
                "deskmate.tenant_id": "2",
                "deskmate.super_user": "on",
                "deskmate.in_channel": "off",
            },
        )
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with conn.transaction():
                await conn.execute("SET LOCAL ROLE deskmate_reader")
                await conn.execute("DELETE FROM document_chunks")
    assert nothing == []
    assert dm == ["finance", "general", "sales"]
    assert channel == ["general"]
    assert other_tenant == []


async def test_retrieval_runs_under_row_level_security(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Break the retrieval query's own access filter: row-level security still stops hr."""
    import storage.retrieval

    user = await add_user(db, "ana@example.com", ["sales"])
    await add_document(db, HASH, "hr", "Salaries", {"Bands": "salary bands text"})
    await add_document(db, HASH, "sales", "Discounts", {"Bands": "discount bands text"})
    # Both SQL filters go: the access rule of `readable` and the small-scope department list.
    broken = re.sub(
        r"WHERE c.tenant_id = \$1\n.*?\n\),\nscoped",
        "WHERE true\n),\nscoped",
        _CHUNKS,
        flags=re.S,
    )
    assert broken != _CHUNKS
    scoped = "\n      AND department = ANY ($16::text[])\n"
    assert scoped in broken
    broken = broken.replace(scoped, "\n")
    monkeypatch.setattr(storage.retrieval, "_CHUNKS", broken)
    async with db.pool.acquire() as conn:
        found = await search_chunks(
            conn,
            dm_reader(user),
            await HASH.embed_query("bands"),
            "salary discount bands",
            min_similarity=-1,
        )
        role_after = await conn.fetchval("SELECT current_user")
    assert [hit.title for hit in found.items] == ["Discounts"]
    assert role_after != "deskmate_reader"  # SET LOCAL ended with the transaction


async def test_a_reader_of_a_small_department_gets_the_exact_nearest_chunks(
    big_db: Database,
) -> None:
    """400 readable chunks among 20,000: the vector arm scans them exactly (no HNSW recall loss,
    however few of the index's neighbours the reader may read)."""
    user = await add_user(big_db, "rare@example.com", ["rare"])
    reader = Reader(1, user, "slack", None, ())
    rng = np.random.default_rng(11)
    async with big_db.pool.acquire() as conn:
        for _ in range(5):
            query = rng.standard_normal(SMALL_DIMENSION).astype(np.float32)
            found = await search_chunks(conn, reader, query, "", limit=10, min_similarity=-1.0,
                                        arms=("meaning",))  # fmt: skip
            truth = await conn.fetch(
                "SELECT id FROM document_chunks WHERE department = 'rare' "
                "ORDER BY (embedding <=> $1) + 0 LIMIT 10",
                query,
            )
            assert [h.chunk_id for h in found.items] == [r["id"] for r in truth]
        async with conn.transaction():
            scope = await _enter_reader_role(conn, reader)
            arguments = chunk_arguments(reader, query, "", limit=10, candidates=40,
                                        min_similarity=-1, scope=scope)  # fmt: skip
            plan = await conn.fetch("EXPLAIN (ANALYZE) " + chunks_sql(("meaning",)), *arguments)
    assert scope == Scope(("rare",), 400)
    hnsw = [r[0] for r in plan if "Index Scan using document_chunks_embedding" in r[0]]
    assert all("never executed" in line for line in hnsw)  # the exact branch ran, not HNSW
    assert any(r[0].strip() == "CTE scoped" for r in plan)  # ...over the readable rows


async def test_the_readers_scope_is_what_they_may_read_where_they_ask(db: Database) -> None:
    """The departments the vector arm may scan exactly, and how many chunks they hold."""
    from tests.support.factories import clear_channel

    for department in ("general", "sales", "hr"):
        await add_document(db, HASH, department, f"{department} doc", {"S": "text"})
    await add_document(db, HASH, "legal", "Shared", {"S": "text"}, access=["sales"])
    await clear_channel(db, "slack", "C-HR", "hr")
    seller = await add_user(db, "sam@example.com", ["sales"])
    boss = await add_user(db, "bo@example.com", [], super_user=True)

    async def scope(user: int, channel: str | None) -> Scope:
        async with db.pool.acquire() as conn, conn.transaction():
            found = await _enter_reader_role(conn, Reader(1, user, "slack", channel, ("general",)))
        return Scope(tuple(sorted(found.departments)) if found.departments else None,
                     found.chunks)  # fmt: skip

    assert await scope(seller, None) == Scope(("general", "legal", "sales"), 3)
    assert await scope(seller, "C-HR") == Scope(("general",), 1)  # the channel is not sales
    assert await scope(boss, None) == Scope(None, 4)
    assert await scope(boss, "C-HR") == Scope(("general", "hr"), 2)


async def test_hnsw_keeps_a_longer_list_for_a_reader_of_part_of_the_corpus(db: Database) -> None:
    """A reader of some departments has the graph search discard everyone else's chunks: at a
    million chunks, 200 candidates found 94 % of a 20 % reader's true 10 nearest, 400 found 98 %."""
    seller = await add_user(db, "sam@example.com", ["sales"])
    boss = await add_user(db, "bo@example.com", [], super_user=True)

    async def ef_search(user: int) -> str:
        async with db.pool.acquire() as conn, conn.transaction():
            await _enter_reader_role(conn, Reader(1, user, "slack", None, ("general",)))
            return str(await conn.fetchval("SHOW hnsw.ef_search"))

    assert await ef_search(seller) == str(HNSW_EF_SEARCH_FILTERED) == "400"
    assert await ef_search(boss) == str(HNSW_EF_SEARCH) == "200"  # the whole corpus, unfiltered


async def test_minilm_answers_a_question_in_other_words_and_declines_an_unrelated_one(
    db: Database,
) -> None:
    """With `EMBEDDING_PROVIDER=minilm` (384 dimensions, the test database's size): the real
    model, the production search and minilm's own gate, through the database."""
    minilm = MiniLMEmbedder()
    gate = RelevanceGate(
        load_settings(env_file=None, embedding_provider="minilm", embedding_dimension=384)
    )
    user = await add_user(db, "ana@example.com", ["hr", "it", "finance"])
    leave = await add_document(db, minilm, "hr", "Leave policy", {
        "Annual leave": "Every employee is entitled to 28 days of paid vacation per calendar "
                        "year. Unused days may be carried over until March.",
        "Sick leave": "Report sickness to your manager before 10:00 on the first day.",
    })  # fmt: skip
    await add_document(db, minilm, "it", "IT accounts", {
        "Password reset": "Reset your credentials on the self-service account recovery page.",
    })  # fmt: skip
    await add_document(db, minilm, "finance", "Travel expenses", {
        "Reimbursement": "Travel costs are reimbursed when receipts are submitted within 30 "
                         "days through the finance portal.",
    })  # fmt: skip

    async def ask(question: str) -> list[ChunkHit]:
        async with db.pool.acquire() as conn:
            found = await search_chunks(conn, dm_reader(user), await minilm.embed_query(question),
                                        question, limit=3, fusion=gate.fusion)  # fmt: skip
        return gate.passages(found.items)

    answered = await ask("How many weeks of holiday do I get?")
    assert answered[0].document_id == leave
    assert answered[0].section_title == "Annual leave"
    assert await ask("What is the capital of Peru?") == []  # "nothing relevant" for this one


@pytest.mark.parametrize(
    ("fusion", "weight"),
    [
        # minilm: 2 × the best keyword match's coverage, squared.
        (Fusion(threshold=0.0, on_topic=2.0, off_topic=0.0, power=2.0), lambda best: 2 * best**2),
        # wordllama: 2 above a best coverage of 35 %, nothing below.
        (Fusion(threshold=0.35, on_topic=2.0, off_topic=0.0), lambda best: 2 * (best >= 0.35)),
    ],
)  # fmt: skip
async def test_keywords_weigh_what_the_calibration_says_for_the_best_match(
    db: Database, fusion: Fusion, weight: Callable[[float], float]
) -> None:
    user = await add_user(db, "ana@example.com", ["hr"])
    await add_document(db, HASH, "hr", "Handbook", {
        "Leave": "Annual leave is 28 days; carry over unused leave until March.",
        "Unpaid leave": "Unpaid leave is asked for with form HR-F12.",
        "Parking": "Parking permits are issued by facilities on request.",
        "Laptops": "Laptops are replaced every four years by the service desk.",
    })  # fmt: skip
    for question, codes in (("How many days of annual leave?", False),
                            ("parking laptops leave quarterly", False),
                            ("Is form HR-F12 needed for leave?", True)):  # fmt: skip
        async with db.pool.acquire() as conn:
            found = await search_chunks(conn, dm_reader(user), await HASH.embed_query(question),
                                        question, limit=10, min_similarity=-1.0,
                                        fusion=fusion)  # fmt: skip
        hits = found.items
        best = max(h.keyword_coverage for h in hits)
        assert 0 < best < 1, question
        # A code the documents hold counts keywords fully, whatever the best match covers.
        expected = fusion.on_topic if codes else weight(best)
        for hit in hits:
            assert hit.score == pytest.approx(hit.similarity + expected * hit.keyword_coverage)
