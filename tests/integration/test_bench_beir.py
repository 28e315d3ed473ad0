"""The public-benchmark command: a folder in BEIR's layout goes through the real ingest and the
production search, and is judged per arm; a folder that is not one is refused clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import beir

DOCUMENTS = {
    "d1": ("Glacier retreat in the Alps", "Alpine glaciers lost a third of their ice mass."),
    "d2": ("Coral bleaching", "Warm water makes corals expel the algae living in them."),
    "d3": ("Sourdough fermentation", "Wild yeast and lactobacilli leaven the bread dough."),
    "d4": ("Volcanic ash and aviation", "Ash clouds melt inside jet engines and stop them."),
}
QUERIES = {
    "q1": "glaciers in the Alps losing ice",
    "q2": "why do corals bleach in warm water",
    "q3": "question that nobody judged",
}


def write_benchmark(folder: Path, qrels: str) -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(
            json.dumps({"_id": i, "title": title, "text": text}) + "\n"
            for i, (title, text) in DOCUMENTS.items()
        )
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": i, "text": text}) + "\n" for i, text in QUERIES.items())
    )
    (folder / "qrels" / "test.tsv").write_text(qrels)
    return folder


async def test_each_arm_is_judged_on_the_documents_it_ranks_first(tmp_path: Path) -> None:
    data = write_benchmark(
        tmp_path / "data", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq2\td4\t0\n"
    )

    benchmark, result = await beir.run(data, "hash", jobs=2)

    assert set(benchmark.judged) == {"q1", "q2"}  # q3 has no judgement; grade 0 is not relevant
    assert result.chunks == 4 and result.ingest_seconds is not None
    for arm in ("meaning", "keywords (BM25)", "fused"):
        # Each question shares its answer's words: every arm ranks it first.
        assert result.ndcg[arm] == [1.0, 1.0], arm
        assert result.recall[arm] == [1.0, 1.0], arm
    printed = beir.report(benchmark, result, "hash", "test")
    assert "2 judged queries (test), 4 documents, 4 chunks, hash" in printed
    assert "  fused            1.000 / 1.000" in printed


async def test_a_kept_database_is_measured_again_without_ingesting(tmp_path: Path) -> None:
    data = write_benchmark(tmp_path / "data", "q1\td1\t1\nq2\td2\t1\n")
    kept = tmp_path / "not" / "yet" / "there"

    _, first = await beir.run(data, "hash", jobs=1, keep=kept)
    _, again = await beir.run(data, "hash", jobs=1, keep=kept)

    assert first.ingest_seconds is not None and again.ingest_seconds is None
    assert again.chunks == first.chunks == 4
    assert again.ndcg == first.ndcg


def test_a_graded_ranking_is_scored_against_the_best_possible_order() -> None:
    grades = {"a": 2, "b": 1}
    assert beir.judge(["a", "b", "c"], grades) == (1.0, 1.0)
    ndcg, recall = beir.judge(["c", "b"], grades)
    assert recall == 0.5
    assert ndcg == pytest.approx((1 / 1.585) / (2 + 1 / 1.585), abs=1e-3)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: (d / "queries.jsonl").unlink(), "queries.jsonl is missing"),
        (lambda d: (d / "qrels" / "test.tsv").write_text("q1\td1\t1\nq2 d2\n"),
         "test.tsv:2: expected query id, document id, grade"),
        (lambda d: (d / "qrels" / "test.tsv").write_text("q9\td1\t1\n"),
         "judges queries not in queries.jsonl: ['q9']"),
        (lambda d: (d / "corpus.jsonl").write_text("{not json\n"), "corpus.jsonl:1: not JSON"),
    ],
)  # fmt: skip
def test_a_folder_not_in_beirs_layout_is_refused_with_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: object, message: str
) -> None:
    data = write_benchmark(tmp_path / "data", "q1\td1\t1\n")
    make(data)  # type: ignore[operator]

    with pytest.raises(SystemExit) as exited:
        beir.main(["--data", str(data)])

    assert exited.value.code == 2
    assert message in capsys.readouterr().err
