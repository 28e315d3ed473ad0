"""The keyword arm: BM25 over the postings kept at ingest, checked against a reference BM25, with
the access rule and row-level security holding for it as for every arm."""

from __future__ import annotations

import re

import bm25s
import numpy as np
import pytest

import storage.retrieval
from bot.embeddings import HashEmbedder
from storage.database import Database
from storage.retrieval import BM25_B, BM25_K1, Reader, search_chunks
from tests.support import TEST_DIMENSION
from tests.support.factories import add_document, add_user

HASH = HashEmbedder(TEST_DIMENSION)

# Passages of different lengths and term frequencies, so IDF, saturation and length
# normalisation all decide some of the orders below.
CORPUS = {
    "Parental leave": {
        "Birth": "Parental leave lasts sixteen weeks, paid in full, for the birth parent.",
        "Partners": "Partners take four weeks of leave; leave can be split in two blocks.",
    },
    "Travel policy": {
        "Trains": "Take the train for trips under four hours; book trains through the portal.",
        "Flights": "Flights need approval; economy class for flights under six hours, "
        "premium economy above six hours, business class never.",
        "Hotels": "Hotels up to 180 EUR a night in capitals, 140 EUR elsewhere.",
    },
    "Expenses": {
        "Receipts": "Every expense needs a receipt; receipts are scanned in the expense app "
        "within thirty days. Late receipts delay the refund of the expense.",
        "Meals": "Meals on trips are refunded up to 45 EUR a day.",
    },
    "Security": {
        "Laptops": "Laptops are encrypted; report a lost laptop within one hour.",
        "Passwords": "Passwords are at least fourteen characters; use the password manager.",
        "Badges": "Badges open the office doors; a lost badge is blocked at once.",
    },
}
QUESTIONS = [
    "How many weeks of parental leave?",
    "lost laptop or badge",
    "receipts for expense refund",
    "flights premium economy hours",
    "trains hotels trips",
    "password manager characters",
    "lost receipts within four hours",
    "EUR a night or a day on trips",
    "weeks of leave in hours",
    "economy flights and trains under four hours",
]


async def _reference_order(db: Database, question: str) -> list[tuple[float, int]]:
    """BM25 (Lucene variant, our k1 and b) from `bm25s` over exactly the terms the database
    indexed: the same statistics, an independent implementation of the ranking."""
    async with db.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT p.chunk_id, l.lexeme, p.tf FROM chunk_postings p "
            "JOIN lexicon l ON l.id = p.term_id ORDER BY p.chunk_id, l.lexeme"
        )
        terms = await conn.fetchval(
            "SELECT array_agg(lexeme) FROM unnest(to_tsvector('english', $1))", question
        )
    chunk_ids = sorted({r["chunk_id"] for r in rows})
    tokens = {cid: [] for cid in chunk_ids}
    for row in rows:
        tokens[row["chunk_id"]] += [row["lexeme"]] * row["tf"]
    reference = bm25s.BM25(k1=BM25_K1, b=BM25_B, method="lucene")
    reference.index([tokens[cid] for cid in chunk_ids], show_progress=False)
    scores = reference.get_scores(list(terms))
    ranked = sorted(zip(scores, chunk_ids, strict=True), key=lambda s: (-s[0], s[1]))
    return [(float(score), cid) for score, cid in ranked if score > 0]


@pytest.fixture
async def handbook(db: Database) -> int:
    for title, sections in CORPUS.items():
        await add_document(db, HASH, "general", title, sections)
    return await add_user(db, "boss@example.com", [], super_user=True)


@pytest.mark.parametrize("question", QUESTIONS)
async def test_the_keyword_arm_ranks_as_a_reference_bm25(
    db: Database, handbook: int, question: str
) -> None:
    reference = await _reference_order(db, question)
    scores = [score for score, _ in reference]
    assert len(set(np.round(scores, 6))) == len(scores)  # no ties: the order is well defined
    async with db.pool.acquire() as conn:
        found = await search_chunks(
            conn, Reader(1, handbook, "web", None, ("general",)), await HASH.embed_query(question),
            question, limit=20, arms=("words",),
        )  # fmt: skip
    assert [hit.chunk_id for hit in found.items] == [cid for _, cid in reference]


async def test_a_documents_title_is_searchable_and_weighs_above_its_body(
    db: Database, handbook: int
) -> None:
    async with db.pool.acquire() as conn:
        found = await search_chunks(
            conn, Reader(1, handbook, "web", None, ("general",)),
            await HASH.embed_query("security"), "security", limit=5, arms=("words",),
        )  # fmt: skip
    # "security" appears in no passage's text, only in the title of three of them.
    assert sorted(hit.section_title or "" for hit in found.items) == [
        "Badges", "Laptops", "Passwords",
    ]  # fmt: skip


async def test_common_terms_are_dropped_past_the_postings_budget_rare_ones_kept(
    db: Database, handbook: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a budget of one posting only the rarest term of the question is read."""
    monkeypatch.setattr(storage.retrieval, "POSTINGS_BUDGET", 1)
    question = "leave badge"  # leave: 2 chunks; badge: 1
    async with db.pool.acquire() as conn:
        found = await search_chunks(
            conn, Reader(1, handbook, "web", None, ("general",)), await HASH.embed_query(question),
            question, limit=5, arms=("words",),
        )  # fmt: skip
    assert [hit.section_title for hit in found.items] == ["Badges"]


async def test_postings_and_statistics_follow_replaced_and_deleted_chunks(
    db: Database, handbook: int
) -> None:
    async with db.pool.acquire() as conn:
        before = await conn.fetchrow("SELECT chunks, total_terms FROM keyword_corpus")
        await conn.execute("DELETE FROM documents WHERE title = 'Security'")
        after = await conn.fetchrow("SELECT chunks, total_terms FROM keyword_corpus")
        df = await conn.fetchval("SELECT df FROM lexicon WHERE lexeme = 'badg'")
        orphans = await conn.fetchval(
            "SELECT count(*) FROM chunk_postings p "
            "WHERE NOT EXISTS (SELECT 1 FROM document_chunks c WHERE c.id = p.chunk_id)"
        )
        counted = await conn.fetchrow(
            "SELECT count(*) AS chunks, "
            "(SELECT sum(tf) FROM chunk_postings) AS total_terms FROM document_chunks"
        )
    assert before["chunks"] - after["chunks"] == 3
    assert tuple(after) == (counted["chunks"], counted["total_terms"])
    assert (df, orphans) == (0, 0)


@pytest.mark.parametrize("arm", ["words", "identifiers"])
async def test_row_level_security_holds_for_the_keyword_arms_when_the_filter_breaks(
    db: Database, monkeypatch: pytest.MonkeyPatch, arm: str
) -> None:
    user = await add_user(db, "ana@example.com", ["sales"])
    await add_document(db, HASH, "hr", "Salaries", {"Bands": "salary bands HR-F12 text"})
    await add_document(db, HASH, "sales", "Discounts", {"Bands": "discount bands HR-F12 text"})
    template = storage.retrieval._CHUNKS_TEMPLATE
    # Both SQL filters go: the access rule of `readable` and the small-scope department list.
    broken = re.sub(r"WHERE c.tenant_id = \$1\n.*?\n\),\nscoped", "WHERE true\n),\nscoped",
                    template, flags=re.S)  # fmt: skip
    assert broken != template
    scoped = "\n      AND department = ANY ($16::text[])\n"
    assert scoped in broken
    broken = broken.replace(scoped, "\n")
    monkeypatch.setattr(storage.retrieval, "_CHUNKS_TEMPLATE", broken)
    question = "salary discount bands HR-F12"
    async with db.pool.acquire() as conn:
        found = await search_chunks(
            conn, Reader(1, user, "slack", None, ("general",)), await HASH.embed_query(question),
            question, min_similarity=-1, arms=(arm,),
        )  # fmt: skip
    assert [hit.title for hit in found.items] == ["Discounts"]
