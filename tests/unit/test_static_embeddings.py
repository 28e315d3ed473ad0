"""The default embedder, wordllama, with its real weights from the wheel: offline, semantic,
unit-length, at the sizes it supports. The unit tier refuses sockets, so these tests also prove
that loading the model never reaches for the network."""

from __future__ import annotations

import numpy as np
import pytest
import requests
import tokenizers

from bot.embedders import create_embedder
from bot.embeddings import EmbeddingError
from bot.settings import load_settings
from bot.static_embeddings import WordLlamaEmbedder

# (question, a passage that answers it in other words, a passage about something else)
PARAPHRASES = [
    (
        "How many days off do I get each year?",
        "Every employee is entitled to 28 days of annual leave.",
        "The warehouse forklift must be inspected every morning.",
    ),
    (
        "My laptop was stolen, what do I do?",
        "Report lost or stolen equipment to IT security immediately.",
        "Salaries are transferred on the last working day of each month.",
    ),
    (
        "How do I get my money back for a business trip?",
        "Travel expenses are reimbursed when receipts are submitted within 30 days.",
        "The cafeteria serves a vegetarian lunch on Fridays.",
    ),
    (
        "I forgot my password",
        "Reset your credentials on the self-service account recovery page.",
        "Customers may return defective goods within 14 days.",
    ),
]


def test_wordllama_is_the_default_at_256_dimensions() -> None:
    embedder = create_embedder(load_settings(env_file=None))
    assert isinstance(embedder, WordLlamaEmbedder)
    assert embedder.dimension == 256
    assert embedder.model == "l2_supercat"


async def test_vectors_are_unit_length_float32_and_deterministic() -> None:
    embedder = WordLlamaEmbedder()
    query = await embedder.embed_query("Where is the holiday policy?")
    again, other = await embedder.embed_documents(
        ["Where is the holiday policy?", "Where is the holiday policy, please?"]
    )
    await embedder.aclose()
    assert query.dtype == np.float32
    assert query.shape == (256,)
    assert float(np.linalg.norm(query)) == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(query, again, atol=1e-6)  # a question and a passage share one space
    assert not np.allclose(query, other)


async def test_paraphrases_are_closer_than_unrelated_passages() -> None:
    embedder = WordLlamaEmbedder()
    for question, answer, unrelated in PARAPHRASES:
        asked = await embedder.embed_query(question)
        near, far = await embedder.embed_documents([answer, unrelated])
        assert float(asked @ near) > float(asked @ far) + 0.15, question


async def test_smaller_sizes_are_the_first_dimensions_of_the_full_vector() -> None:
    text = "Remote working is allowed three days a week."
    full = await WordLlamaEmbedder(256).embed_query(text)
    for size in (64, 128):
        short = await WordLlamaEmbedder(size).embed_query(text)
        assert short.shape == (size,)
        prefix = full[:size] / np.linalg.norm(full[:size])
        assert np.allclose(short, prefix, atol=1e-5)


async def test_a_text_without_words_gets_a_zero_vector() -> None:
    embedder = WordLlamaEmbedder()
    blank, word = await embedder.embed_documents(["", "leave"])
    assert not blank.any()
    assert float(np.linalg.norm(word)) == pytest.approx(1.0, abs=1e-5)
    assert await embedder.embed_documents([]) == []


async def test_loading_never_asks_the_hugging_face_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model must come from the wheel, not the hub")

    # wordllama downloads with requests and falls back to the hub's tokenizer on a missing file.
    monkeypatch.setattr(requests, "get", refuse)
    monkeypatch.setattr(requests.Session, "request", refuse)
    monkeypatch.setattr(tokenizers.Tokenizer, "from_pretrained", refuse)
    vector = await WordLlamaEmbedder(128).embed_query("hello")
    assert vector.shape == (128,)


def test_a_size_the_model_does_not_make_is_refused() -> None:
    with pytest.raises(EmbeddingError, match="makes 64, 128, 256 dimensions, not 384"):
        WordLlamaEmbedder(384)
