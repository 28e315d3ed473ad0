"""Embedders without a server: the offline `hash`, the local provider over a stand-in for
sentence-transformers, and which provider the settings choose (the default, wordllama, has
tests/unit/test_static_embeddings.py)."""

from __future__ import annotations

import importlib.machinery
import sys
import types
from typing import Any

import numpy as np
import pytest

from bot.embedders import create_embedder
from bot.embedding_providers import OpenAICompatibleEmbedder, VoyageEmbedder
from bot.embeddings import EmbeddingError, HashEmbedder, LocalEmbedder
from bot.settings import DEFAULT_EMBEDDING_MODELS, EmbeddingProvider, load_settings

DIM = 16


def assert_unit(vector: np.ndarray) -> None:
    assert vector.dtype == np.float32
    assert vector.shape == (DIM,)
    assert float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-5)


# --- hash --------------------------------------------------------------------------------------


async def test_hash_embedder_is_deterministic_unit_length_and_sized() -> None:
    settings = load_settings(env_file=None, embedding_provider="hash", embedding_dimension=64)
    embedder = create_embedder(settings)
    assert isinstance(embedder, HashEmbedder)
    first = await embedder.embed_query("Where is the holiday policy?")
    again = await HashEmbedder(64).embed_query("Where is the holiday policy?")
    assert first.shape == (64,)
    assert np.array_equal(first, again)
    assert float(np.linalg.norm(first)) == pytest.approx(1.0, abs=1e-5)


async def test_hash_embedder_puts_texts_sharing_words_closer() -> None:
    embedder = HashEmbedder(256)
    query = await embedder.embed_query("holiday policy for new staff")
    related, unrelated = await embedder.embed_documents(
        ["the holiday policy explains leave for staff", "quarterly revenue grew in Berlin"]
    )
    assert float(query @ related) > float(query @ unrelated)


async def test_hash_embedder_gives_a_zero_vector_for_empty_text() -> None:
    vector = await HashEmbedder(DIM).embed_query("")
    assert vector.shape == (DIM,)
    assert not vector.any()


# --- local (sentence-transformers) -------------------------------------------------------------


def test_local_without_sentence_transformers_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # None in sys.modules makes the package unimportable even where it is installed.
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    settings = load_settings(env_file=None, embedding_provider="local", embedding_dimension=DIM)
    with pytest.raises(EmbeddingError, match=r"deskmate\[local\]"):
        create_embedder(settings)


class FakeSentenceTransformer:
    """Just enough of sentence_transformers.SentenceTransformer for LocalEmbedder."""

    size = DIM
    prompts = {"query": "query: "}  # noqa: RUF012 - mirrors the real attribute
    calls: list[dict[str, Any]] = []  # noqa: RUF012 - shared so the test can read it

    def __init__(self, name: str) -> None:
        self.name = name

    def get_sentence_embedding_dimension(self) -> int:
        return self.size

    def encode(self, texts: list[str], **options: Any) -> np.ndarray:
        self.calls.append({"texts": texts, **options})
        return np.ones((len(texts), self.size), dtype=np.float32)


@pytest.fixture
def fake_sentence_transformers(monkeypatch: pytest.MonkeyPatch) -> type[FakeSentenceTransformer]:
    module = types.ModuleType("sentence_transformers")
    module.__spec__ = importlib.machinery.ModuleSpec("sentence_transformers", None)
    module.SentenceTransformer = FakeSentenceTransformer  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sentence_transformers", module)
    monkeypatch.setattr(FakeSentenceTransformer, "calls", [])
    return FakeSentenceTransformer


async def test_local_encodes_in_a_thread_with_the_models_prompts(
    fake_sentence_transformers: type[FakeSentenceTransformer],
) -> None:
    settings = load_settings(env_file=None, embedding_provider="local", embedding_dimension=DIM)
    embedder = create_embedder(settings)
    assert isinstance(embedder, LocalEmbedder)
    documents = await embedder.embed_documents(["a", "b"])
    query = await embedder.embed_query("c")
    await embedder.aclose()
    for vector in [*documents, query]:
        assert_unit(vector)
    document_call, query_call = fake_sentence_transformers.calls
    assert document_call["prompt_name"] is None
    assert query_call["prompt_name"] == "query"


async def test_local_model_of_the_wrong_size_is_refused(
    fake_sentence_transformers: type[FakeSentenceTransformer], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fake_sentence_transformers, "size", 384)
    embedder = LocalEmbedder(dimension=DIM)
    mismatch = "returns 384 dimensions but EMBEDDING_DIMENSION is 16"
    with pytest.raises(EmbeddingError, match=mismatch):
        await embedder.embed_query("hello")


# --- choosing a provider -----------------------------------------------------------------------


def test_voyage_without_a_key_is_refused() -> None:
    settings = load_settings(env_file=None, embedding_provider="voyage")
    with pytest.raises(EmbeddingError, match="VOYAGE_API_KEY"):
        create_embedder(settings)


def test_openai_without_a_base_url_or_key_is_refused() -> None:
    settings = load_settings(env_file=None, embedding_provider="openai")
    with pytest.raises(EmbeddingError, match="EMBEDDING_BASE_URL"):
        create_embedder(settings)


def test_openai_with_only_a_key_calls_openai() -> None:
    settings = load_settings(env_file=None, embedding_provider="openai", openai_api_key="sk-x")
    embedder = create_embedder(settings)
    assert isinstance(embedder, OpenAICompatibleEmbedder)
    assert embedder.url == "https://api.openai.com/v1/embeddings"
    assert embedder.send_dimensions  # text-embedding-3-small can shorten its vectors


def test_the_model_the_database_records_is_the_model_the_embedder_uses(
    fake_sentence_transformers: type[FakeSentenceTransformer],
) -> None:
    network = {"voyage_api_key": "vk-x", "embedding_base_url": "http://127.0.0.1:9"}
    for provider in EmbeddingProvider:
        sizes = {
            EmbeddingProvider.WORDLLAMA: 256,
            EmbeddingProvider.MINILM: 384,
            EmbeddingProvider.MPNET: 768,
        }
        dimension = sizes.get(provider, DIM)
        settings = load_settings(
            env_file=None, embedding_provider=provider, embedding_dimension=dimension, **network
        )
        embedder = create_embedder(settings)
        model = getattr(embedder, "model", DEFAULT_EMBEDDING_MODELS[EmbeddingProvider.HASH])
        assert model == settings.embedding_space.model == DEFAULT_EMBEDDING_MODELS[provider]
        assert settings.embedding_space.provider == provider.value
    # The classes' own defaults, for callers that build them directly, are the same models.
    defaults = DEFAULT_EMBEDDING_MODELS
    assert VoyageEmbedder.default_model == defaults[EmbeddingProvider.VOYAGE]
    assert OpenAICompatibleEmbedder.default_model == defaults[EmbeddingProvider.OPENAI]
    assert LocalEmbedder.default_model == defaults[EmbeddingProvider.LOCAL]
