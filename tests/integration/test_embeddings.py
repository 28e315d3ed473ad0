"""Embedders over HTTP: the Voyage and OpenAI-compatible providers against a local fake server,
their retries and failures."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import SecretStr

from bot.embedders import create_embedder
from bot.embedding_providers import OpenAICompatibleEmbedder, VoyageEmbedder
from bot.embeddings import EmbeddingError
from bot.settings import Settings, load_settings
from storage.database import Database
from storage.errors import SchemaMismatch
from tests.support.fakes.embedding_server import FakeEmbeddingServer, expected_vector

DIM = 16
KEY = "vk-test-secret-0123456789"


@pytest.fixture
async def server() -> AsyncIterator[FakeEmbeddingServer]:
    fake = FakeEmbeddingServer(dimension=DIM)
    await fake.start()
    yield fake
    await fake.stop()


class RecordingSleep:
    """Stands in for asyncio.sleep: remembers the waits instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


def voyage_settings(server: FakeEmbeddingServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "embedding_provider": "voyage",
        "embedding_base_url": server.url,
        "voyage_api_key": KEY,
        "embedding_dimension": DIM,
    }
    return load_settings(env_file=None, **(values | overrides))


def voyage(server: FakeEmbeddingServer, sleep: RecordingSleep) -> VoyageEmbedder:
    return VoyageEmbedder(dimension=DIM, api_key=SecretStr(KEY), base_url=server.url, sleep=sleep)


def assert_unit(vector: np.ndarray) -> None:
    assert vector.dtype == np.float32
    assert vector.shape == (DIM,)
    assert float(np.linalg.norm(vector)) == pytest.approx(1.0, abs=1e-5)


# --- Voyage AI ---------------------------------------------------------------------------------


async def test_voyage_sends_input_type_model_dimension_and_bearer_key(
    server: FakeEmbeddingServer,
) -> None:
    embedder = create_embedder(voyage_settings(server))
    assert isinstance(embedder, VoyageEmbedder)
    try:
        documents = await embedder.embed_documents(["alpha", "beta"])
        query = await embedder.embed_query("gamma")
    finally:
        await embedder.aclose()
    first, second = server.requests
    assert first.path == "/v1/embeddings"
    assert first.headers["Authorization"] == f"Bearer {KEY}"
    assert first.body == {
        "input": ["alpha", "beta"],
        "model": "voyage-3.5",
        "input_type": "document",
        "output_dimension": DIM,
    }
    assert second.body["input_type"] == "query"
    assert second.texts == ["gamma"]
    for vector, text in [*zip(documents, ["alpha", "beta"], strict=True), (query, "gamma")]:
        assert_unit(vector)
        assert np.allclose(vector, expected_vector(text, DIM), atol=1e-6)


async def test_voyage_batches_and_keeps_input_order(
    server: FakeEmbeddingServer, sleep: RecordingSleep
) -> None:
    server.reverse_order = True  # the client must order by `index`, not by list position
    embedder = voyage(server, sleep)
    embedder.batch_size = 4
    texts = [f"passage number {n}" for n in range(10)]
    vectors = await embedder.embed_documents(texts)
    await embedder.aclose()
    assert [len(request.texts) for request in server.requests] == [4, 4, 2]
    assert [t for request in server.requests for t in request.texts] == texts
    for vector, text in zip(vectors, texts, strict=True):
        assert np.allclose(vector, expected_vector(text, DIM), atol=1e-6)


async def test_blank_texts_get_zero_vectors_without_being_sent(
    server: FakeEmbeddingServer, sleep: RecordingSleep
) -> None:
    embedder = voyage(server, sleep)
    blank, word = await embedder.embed_documents(["  ", "word"])
    assert await embedder.embed_documents([]) == []
    await embedder.aclose()
    assert not blank.any()
    assert_unit(word)
    assert [request.texts for request in server.requests] == [["word"]]


async def test_voyage_model_with_a_fixed_size_gets_no_output_dimension(
    server: FakeEmbeddingServer, sleep: RecordingSleep
) -> None:
    embedder = VoyageEmbedder(
        dimension=DIM, api_key=SecretStr(KEY), model="voyage-3", base_url=server.url, sleep=sleep
    )
    await embedder.embed_query("hello")
    await embedder.aclose()
    assert "output_dimension" not in server.requests[0].body


# --- OpenAI-compatible -------------------------------------------------------------------------


async def test_openai_compatible_works_without_a_key(server: FakeEmbeddingServer) -> None:
    settings = load_settings(
        env_file=None,
        embedding_provider="openai",
        embedding_base_url=server.url + "/v1/",  # the base as OpenAI's SDK documents it
        embedding_model="nomic-embed-text",
        embedding_dimension=DIM,
    )
    embedder = create_embedder(settings)
    assert isinstance(embedder, OpenAICompatibleEmbedder)
    vector = await embedder.embed_query("hello")
    await embedder.aclose()
    assert_unit(vector)
    request = server.requests[0]
    assert request.path == "/v1/embeddings"
    assert "Authorization" not in request.headers
    assert request.body == {"input": ["hello"], "model": "nomic-embed-text"}


async def test_openai_compatible_sends_a_key_and_dimensions_when_configured(
    server: FakeEmbeddingServer,
) -> None:
    embedder = OpenAICompatibleEmbedder(
        dimension=DIM, base_url=server.url, api_key=SecretStr("sk-local"), send_dimensions=True
    )
    await embedder.embed_documents(["one", "two"])
    await embedder.aclose()
    request = server.requests[0]
    assert request.headers["Authorization"] == "Bearer sk-local"
    assert request.body == {
        "input": ["one", "two"],
        "model": "text-embedding-3-small",
        "dimensions": DIM,
    }


# --- retries and failures ----------------------------------------------------------------------


async def test_429_is_retried_after_the_wait_the_server_asks_for(
    server: FakeEmbeddingServer, sleep: RecordingSleep
) -> None:
    server.fail_once(429, retry_after="0")
    embedder = voyage(server, sleep)
    vector = await embedder.embed_query("hello")
    await embedder.aclose()
    assert_unit(vector)
    assert len(server.requests) == 2
    assert sleep.waits == [0.0]


async def test_500_is_retried_with_backoff(
    server: FakeEmbeddingServer, sleep: RecordingSleep
) -> None:
    server.fail_once(500)
    embedder = voyage(server, sleep)
    assert_unit(await embedder.embed_query("hello"))
    await embedder.aclose()
    assert len(server.requests) == 2
    assert len(sleep.waits) == 1
    assert embedder.base_delay / 2 <= sleep.waits[0] <= embedder.base_delay


async def test_persistent_500_gives_up_without_revealing_the_key(
    server: FakeEmbeddingServer, sleep: RecordingSleep
) -> None:
    server.fail_always(500, detail=f"internal error for key {KEY}")
    embedder = voyage(server, sleep)
    with pytest.raises(EmbeddingError) as caught:
        await embedder.embed_query("hello")
    await embedder.aclose()
    assert len(server.requests) == embedder.max_attempts
    assert len(sleep.waits) == embedder.max_attempts - 1
    for attempt, wait in enumerate(sleep.waits, start=1):  # exponential, with jitter
        ceiling = embedder.base_delay * 2 ** (attempt - 1)
        assert ceiling / 2 <= wait <= ceiling
    message = str(caught.value)
    assert "HTTP 500" in message
    assert KEY not in message


async def test_unreachable_server_is_retried_then_reported(sleep: RecordingSleep) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    embedder = VoyageEmbedder(
        dimension=DIM, api_key=SecretStr(KEY), base_url=f"http://127.0.0.1:{port}", sleep=sleep
    )
    with pytest.raises(EmbeddingError, match="failed 4 times") as caught:
        await embedder.embed_documents(["hello"])
    await embedder.aclose()
    assert len(sleep.waits) == 3
    assert KEY not in str(caught.value)


async def test_client_errors_are_not_retried_and_quote_the_server_without_the_key(
    server: FakeEmbeddingServer, sleep: RecordingSleep
) -> None:
    server.fail_once(400, detail=f"output_dimension 16 is not supported (key {KEY})")
    embedder = voyage(server, sleep)
    with pytest.raises(EmbeddingError) as caught:
        await embedder.embed_query("hello")
    await embedder.aclose()
    message = str(caught.value)
    assert "HTTP 400" in message
    assert "output_dimension 16 is not supported" in message
    assert KEY not in message
    assert len(server.requests) == 1


async def test_a_rejected_key_names_the_setting(
    server: FakeEmbeddingServer, sleep: RecordingSleep
) -> None:
    server.fail_once(401)
    embedder = voyage(server, sleep)
    with pytest.raises(EmbeddingError, match="VOYAGE_API_KEY"):
        await embedder.embed_query("hello")
    await embedder.aclose()


async def test_wrong_dimension_names_both_numbers(
    server: FakeEmbeddingServer, sleep: RecordingSleep
) -> None:
    server.dimension = 12
    embedder = voyage(server, sleep)
    with pytest.raises(EmbeddingError) as caught:
        await embedder.embed_documents(["hello"])
    await embedder.aclose()
    assert "returns 12 dimensions but EMBEDDING_DIMENSION is 16" in str(caught.value)


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"data": []}, "returned 0 embeddings for 2 texts"),
        ({"detail": "nothing"}, "without a list of embeddings"),
        ({"data": [{"embedding": "x", "index": 0}, {"embedding": [], "index": 1}]}, "numbers"),
        ({"data": [{"embedding": [0.0] * DIM, "index": 0}] * 2}, "numbered"),
    ],
)
async def test_malformed_answers_are_errors(
    server: FakeEmbeddingServer, sleep: RecordingSleep, body: object, complaint: str
) -> None:
    server.answer_once(body)
    embedder = voyage(server, sleep)
    with pytest.raises(EmbeddingError, match=complaint):
        await embedder.embed_documents(["one", "two"])
    await embedder.aclose()


@pytest.mark.parametrize(
    ("made_by", "made_as", "now", "now_as"),
    [
        ("wordllama", "wordllama l2_supercat (256 dimensions)",
         "minilm", "minilm all-MiniLM-L6-v2-int8 (384 dimensions)"),
        ("minilm", "minilm all-MiniLM-L6-v2-int8 (384 dimensions)",
         "mpnet", "mpnet all-mpnet-base-v2 (768 dimensions)"),
    ],
)  # fmt: skip
async def test_a_database_of_another_models_vectors_is_refused_until_reindexed(
    fresh_database: str, tmp_path: Path, made_by: str, made_as: str, now: str, now_as: str
) -> None:
    """Each model records its provider and name: their vectors are not comparable, so start-up
    names `deskmate reindex` instead of mixing the two (no model is loaded to find this out)."""
    before = load_settings(
        env_file=None, database_url=fresh_database, deskmate_data_dir=tmp_path,
        embedding_provider=made_by,
    )  # fmt: skip
    database = Database(before.database)
    await database.start()
    await database.stop()
    after = load_settings(
        env_file=None, database_url=fresh_database, deskmate_data_dir=tmp_path,
        embedding_provider=now,
    )  # fmt: skip
    refused = Database(after.database)
    with pytest.raises(SchemaMismatch) as caught:
        await refused.start()
    await refused.stop()
    assert made_as in str(caught.value)
    assert now_as in str(caught.value)
    assert "deskmate reindex" in str(caught.value)
