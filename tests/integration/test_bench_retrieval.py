"""The retrieval benchmark itself: it must keep running, and its workloads keep their shape
(a benchmark that silently stopped measuring what docs/benchmarks.md says would mislead)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from bench import retrieval
from storage import retrieval as storage_retrieval


async def test_the_benchmark_measures_every_reader_on_a_small_corpus() -> None:
    curve = await retrieval.run((2_000,), retrieval.HashWorkload())

    results = curve[2_000]["results"]
    assert set(results) == {"1 % reader", "20 % reader", "super user"}
    for name, measured in results.items():
        # At this size every search is exact or as good as exact, and returns its 10 rows.
        assert measured["recall"] == 1.0, name
        assert measured["short"] == 0, name
        assert measured["fused"].p50 > 0 and measured["exact"].p50 > 0


async def test_minilm_chunks_are_three_handbook_sentences_and_their_mean_vector() -> None:
    workload = retrieval.MiniLMWorkload()
    assert len(workload.sentences) > 1_000  # the evaluation and demo handbooks
    # The sentence vectors stand in for the model's (embedding them takes seconds).
    workload.vectors = retrieval.unit(
        np.random.default_rng(3).normal(size=(len(workload.sentences), retrieval.DIMENSION))
    )

    texts, vectors = await workload.chunks(random.Random(5), range(100, 110))

    assert len(texts) == 10 and vectors.shape == (10, retrieval.DIMENSION)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    first = texts[0]
    assert first.startswith("Section 100: ") and first.endswith("Form HR-F100.")
    used = [i for i, sentence in enumerate(workload.sentences) if sentence in first]
    assert len(used) >= 3
    # Drawn again with the same seed: the same corpus, so runs compare.
    again, _ = await workload.chunks(random.Random(5), range(100, 110))
    assert again == texts


async def test_the_candidate_list_comparison_reports_each_length_and_restores_the_product(
    capsys: pytest.CaptureFixture[str],
) -> None:
    kept = (storage_retrieval.HNSW_EF_SEARCH, storage_retrieval.HNSW_EF_SEARCH_FILTERED)

    curve = await retrieval.run((2_000,), retrieval.HashWorkload(), ef_search=(40, 80))

    assert curve == {}  # nothing else is measured
    printed = capsys.readouterr().out
    for reader in ("1 % reader", "20 % reader", "super user"):
        assert f"{reader:<12} ef_search   40: recall@10 " in printed
        assert f"{reader:<12} ef_search   80: recall@10 " in printed
    assert kept == (storage_retrieval.HNSW_EF_SEARCH, storage_retrieval.HNSW_EF_SEARCH_FILTERED)
