"""The HTTP embedding providers: Voyage AI and any OpenAI-compatible server.

Both share one request loop (`_HttpEmbedder`): batches of at most `batch_size` texts, retries
with backoff on 429, 5xx and connection errors, and a strict check of the answer, so a model of
the wrong size fails loudly instead of filling the index with unusable vectors.
`bot.embedders.create_embedder` picks one from the settings.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar

import aiohttp
import numpy as np
from pydantic import SecretStr
from yarl import URL

from bot.embeddings import EmbeddingError, unit_vector
from bot.retry import retry_after_seconds

Sleep = Callable[[float], Awaitable[None]]


class _HttpEmbedder:
    """Batching, retries, answer checks and the aiohttp session shared by the HTTP providers."""

    service: str = "the embedding server"  # how messages name the other side
    key_variable: ClassVar[str] = ""
    default_base_url: ClassVar[str] = ""
    default_model: ClassVar[str] = ""
    batch_size: int = 64
    max_attempts: int = 4
    base_delay: float = 0.5  # seconds before the first retry; doubles on each further one
    max_delay: float = 30.0  # no single wait is longer, whatever Retry-After asks for
    timeout: float = 60.0

    def __init__(
        self,
        *,
        dimension: int,
        model: str | None = None,
        base_url: str | None = None,
        api_key: SecretStr | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.dimension = dimension
        self.model = model or self.default_model
        self.url = _endpoint(base_url or self.default_base_url)
        self.origin = str(URL(self.url).origin())  # without any user:password in the URL
        self._api_key = api_key if api_key and api_key.get_secret_value() else None
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None

    def _payload(self, texts: list[str], input_type: str) -> dict[str, Any]:
        raise NotImplementedError

    async def embed_documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One unit vector per text, in input order; a blank text gets a zero vector, unsent."""
        vectors = [np.zeros(self.dimension, dtype=np.float32) for _ in texts]
        # The APIs reject empty strings, and a blank passage has nothing to be found by anyway.
        wanted = [i for i, text in enumerate(texts) if text.strip()]
        # One batch at a time: ingestion is not latency-bound, and this stays under rate limits.
        for start in range(0, len(wanted), self.batch_size):
            positions = wanted[start : start + self.batch_size]
            found = await self._embed([texts[i] for i in positions], "document")
            for i, vector in zip(positions, found, strict=True):
                vectors[i] = vector
        return vectors

    async def embed_query(self, text: str) -> np.ndarray:
        """The unit vector of a question (a zero vector for a blank one)."""
        if not text.strip():
            return np.zeros(self.dimension, dtype=np.float32)
        return (await self._embed([text], "query"))[0]

    async def aclose(self) -> None:
        """Close the HTTP session; the embedder opens a new one if used again."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _embed(self, texts: list[str], input_type: str) -> list[np.ndarray]:
        answer = await self._post(self._payload(texts, input_type))
        return self._vectors(answer, len(texts))

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use rather than in __init__, which may run before any event loop does.
        if self._session is None or self._session.closed:
            headers = {}
            if self._api_key is not None:
                headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
            self._session = aiohttp.ClientSession(
                headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout)
            )
        return self._session

    async def _post(self, payload: dict[str, Any]) -> object:
        """The JSON answer to `payload`, retrying what waiting can fix; EmbeddingError otherwise."""
        problem = ""
        for attempt in range(1, self.max_attempts + 1):
            wait: float | None = None
            try:
                async with self._client().post(self.url, json=payload) as response:
                    if 200 <= response.status < 300:
                        return await self._json(response)
                    if not _worth_retrying(response.status):
                        raise self._error(await self._refusal(response))
                    problem = f"HTTP {response.status}"
                    wait = retry_after_seconds(response.headers.get("Retry-After"))
            except TimeoutError:
                problem = f"no answer within {self.timeout:g} s"
            except ValueError as exc:  # aiohttp's verdict on the URL or headers: a setting is wrong
                raise self._error(f"cannot send requests to {self.origin}: {exc}") from None
            except aiohttp.ClientError as exc:
                problem = str(exc) or type(exc).__name__
            if attempt < self.max_attempts:
                delay = self._backoff(attempt) if wait is None else min(wait, self.max_delay)
                await self._sleep(delay)
        raise self._error(
            f"{self.service} at {self.origin} failed {self.max_attempts} times in a row "
            f"({problem}), so the texts were not embedded"
        )

    def _backoff(self, attempt: int) -> float:
        # Exponential with "equal jitter": waits grow, and clients that failed together spread out.
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    async def _json(self, response: aiohttp.ClientResponse) -> object:
        try:
            return await response.json(content_type=None)
        except ValueError:  # a decoding error: retrying the same request will not help
            raise self._error(
                f"{self.service} at {self.origin} answered with invalid JSON"
            ) from None

    async def _refusal(self, response: aiohttp.ClientResponse) -> str:
        status = response.status
        if status in (401, 403):
            hint = f"; check {self.key_variable}" if self.key_variable else ""
            return f"{self.service} rejected the API key (HTTP {status}){hint}"
        detail = await _error_detail(response)
        said = f": {detail}" if detail else ""
        return f"{self.service} refused the embedding request with HTTP {status}{said}"

    def _vectors(self, answer: object, count: int) -> list[np.ndarray]:
        """The `count` unit vectors in `answer`, in input order; EmbeddingError if unusable."""
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise self._error(f"{self.service} answered without a list of embeddings")
        if len(data) != count:
            raise self._error(f"{self.service} returned {len(data)} embeddings for {count} texts")
        # Each item carries the position of its text; trust that over the order of the list.
        if all(isinstance(item.get("index"), int) for item in data):
            data = sorted(data, key=lambda item: item["index"])
            if [item["index"] for item in data] != list(range(count)):
                raise self._error(f"{self.service} numbered its embeddings wrongly")
        return [
            unit_vector(item.get("embedding"), model=self.model, dimension=self.dimension)
            for item in data
        ]

    def _error(self, message: str) -> EmbeddingError:
        # Servers sometimes quote the key back in an error; it must never reach a log or a user.
        if self._api_key is not None:
            message = message.replace(self._api_key.get_secret_value(), "[redacted]")
        return EmbeddingError(message)


class VoyageEmbedder(_HttpEmbedder):
    """Voyage AI's `/v1/embeddings`, telling queries and documents apart."""

    service = "Voyage AI"
    key_variable = "VOYAGE_API_KEY"
    default_base_url = "https://api.voyageai.com"
    default_model = "voyage-3.5"
    batch_size = 64
    # These older models have one fixed size and reject `output_dimension`; newer ones accept it.
    FIXED_SIZE_MODELS: ClassVar[frozenset[str]] = frozenset(
        {
            "voyage-3",
            "voyage-3-lite",
            "voyage-finance-2",
            "voyage-multilingual-2",
            "voyage-law-2",
            "voyage-code-2",
            "voyage-large-2",
            "voyage-large-2-instruct",
            "voyage-2",
            "voyage-02",
            "voyage-01",
            "voyage-lite-01",
            "voyage-lite-02-instruct",
            "voyage-multimodal-3",
        }
    )

    def __init__(
        self,
        *,
        dimension: int,
        api_key: SecretStr,
        model: str | None = None,
        base_url: str | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(
            dimension=dimension, model=model, base_url=base_url, api_key=api_key, sleep=sleep
        )

    def _payload(self, texts: list[str], input_type: str) -> dict[str, Any]:
        payload: dict[str, Any] = {"input": texts, "model": self.model, "input_type": input_type}
        if self.model not in self.FIXED_SIZE_MODELS:
            payload["output_dimension"] = self.dimension
        return payload


class OpenAICompatibleEmbedder(_HttpEmbedder):
    """OpenAI's `/v1/embeddings` or any server speaking it (vLLM, Ollama, llama.cpp, LM Studio)."""

    key_variable = "OPENAI_API_KEY"
    default_base_url = "https://api.openai.com"
    default_model = "text-embedding-3-small"
    batch_size = 128

    def __init__(
        self,
        *,
        dimension: int,
        model: str | None = None,
        base_url: str | None = None,
        api_key: SecretStr | None = None,
        send_dimensions: bool | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        """`send_dimensions=None` sends `dimensions` only to OpenAI's text-embedding-3 models,
        the ones known to shorten their vectors on request; other servers may reject the field."""
        super().__init__(
            dimension=dimension, model=model, base_url=base_url, api_key=api_key, sleep=sleep
        )
        if send_dimensions is None:
            send_dimensions = self.model.startswith("text-embedding-3")
        self.send_dimensions = send_dimensions
        host = URL(self.url).host
        self.service = "OpenAI" if host == "api.openai.com" else "the embedding server"

    def _payload(self, texts: list[str], input_type: str) -> dict[str, Any]:
        payload: dict[str, Any] = {"input": texts, "model": self.model}
        if self.send_dimensions:
            payload["dimensions"] = self.dimension
        return payload


def _endpoint(base_url: str) -> str:
    # Vendors document the base both with and without /v1; accept either (and the full URL).
    base = base_url.rstrip("/").removesuffix("/embeddings").removesuffix("/v1")
    return f"{base}/v1/embeddings"


def _worth_retrying(status: int) -> bool:
    return status in (408, 429) or status >= 500


async def _error_detail(response: aiohttp.ClientResponse) -> str:
    """The server's own explanation (Voyage's `detail`, OpenAI's `error.message`), shortened."""
    try:
        text = await response.text()
    except (aiohttp.ClientError, UnicodeDecodeError, TimeoutError):
        return ""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    detail: object = text
    if isinstance(body, dict):
        error = body.get("error")
        detail = body.get("detail") or body.get("message") or error or text
        if isinstance(error, dict):
            detail = error.get("message") or detail
    words = " ".join(str(detail).split())
    return words if len(words) <= 200 else words[:199] + "…"
