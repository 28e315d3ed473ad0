"""Text embeddings behind one async interface: the interface, `hash` and `local`.

`hash` needs no network and no model: deterministic feature hashing of word unigrams, word
bigrams and character trigrams, L2-normalised. It finds passages that share words with the
question; the other providers also find passages that share meaning: `minilm` (the default) and
`wordllama` in `bot.static_embeddings`, `local` (sentence-transformers, below) and the HTTP ones in
`bot.embedding_providers`. `bot.embedders` picks one from the settings.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import itertools
import re
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

import numpy as np

from bot import metrics
from bot.errors import DeskmateError

__all__ = [
    "Embedder",
    "EmbeddingError",
    "HashEmbedder",
    "LocalEmbedder",
    "MeasuredEmbedder",
]

_WORD = re.compile(r"[\w']+", re.UNICODE)


class EmbeddingError(DeskmateError):
    """The embedding provider failed or answered something unusable."""

    http_status = 502


def unit_vector(values: object, *, model: str, dimension: int) -> np.ndarray:
    """`values` as an L2-normalised float32 vector of `dimension` floats, else EmbeddingError."""
    try:
        vector = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise EmbeddingError(
            f"the embedding model {model!r} returned a vector that is not a list of numbers"
        ) from None
    if vector.ndim != 1 or not np.all(np.isfinite(vector)):
        raise EmbeddingError(
            f"the embedding model {model!r} returned a vector that is not a list of numbers"
        )
    if vector.shape[0] != dimension:
        raise dimension_mismatch(model, vector.shape[0], dimension)
    norm = float(np.linalg.norm(vector))
    # A zero vector stays zero, as HashEmbedder does for a text without words.
    return vector / norm if norm > 0 else vector


def dimension_mismatch(model: str, returned: int, configured: int) -> EmbeddingError:
    """The error for a model whose vectors do not fit the database's vector column."""
    return EmbeddingError(
        f"the embedding model {model!r} returns {returned} dimensions "
        f"but EMBEDDING_DIMENSION is {configured}"
    )


class Embedder(Protocol):
    """Turns texts into unit vectors of `dimension` floats."""

    dimension: int

    async def embed_documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Vectors for passages to be stored (batched by the provider as it needs)."""
        ...

    async def embed_query(self, text: str) -> np.ndarray:
        """The vector of a question, to search with."""
        ...

    async def aclose(self) -> None:
        """Release network clients, if any."""
        ...


# Function words carry no topic: left in, "what is the … in …" makes every question look alike.
_STOPWORD_TEXT = """
    a about after all also am an and any are as at be been before but by can could did do does
    for from get got had has have he her him his how i if in into is it its just me my no not of
    on or our out over please she should so some than that the their them then there these they
    this those to too up us was we were what when where which who whom why will with would you
    your"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def _features(text: str) -> list[tuple[str, float]]:
    """Weighted features of a text: content words (1.0), pairs of neighbouring content words
    (0.5), and each word's character trigrams sharing 0.5, so inflections still meet."""
    words = [w for w in (m.lower() for m in _WORD.findall(text)) if w not in STOPWORDS]
    features = [(f"w:{w}", 1.0) for w in words]
    features += [(f"b:{a} {b}", 0.5) for a, b in itertools.pairwise(words)]
    for word in words:
        padded = f" {word} "
        grams = [padded[i : i + 3] for i in range(len(padded) - 2)]
        features += [(f"c:{g}", 0.5 / len(grams)) for g in grams]
    return features


class HashEmbedder:
    """Feature hashing: offline, deterministic, no model at all."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension

    def embed(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dimension, dtype=np.float32)
        for feature, weight in _features(text):
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            index = int.from_bytes(digest[:4], "little") % self.dimension
            sign = 1.0 if digest[4] & 1 else -1.0  # signed hashing keeps collisions unbiased
            vector[index] += sign * weight
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm > 0 else vector

    async def embed_documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [self.embed(text) for text in texts]

    async def embed_query(self, text: str) -> np.ndarray:
        return self.embed(text)

    async def aclose(self) -> None:
        return None


class LocalEmbedder:
    """sentence-transformers on this machine (the `deskmate[local]` extra), in a worker thread."""

    default_model: ClassVar[str] = "sentence-transformers/all-MiniLM-L6-v2"
    batch_size: int = 32

    def __init__(self, *, dimension: int, model: str | None = None) -> None:
        """Raise EmbeddingError at once when the extra is missing, not at the first question."""
        # Only look for the package here: importing it pulls in torch, which takes seconds.
        if not _installed("sentence_transformers"):
            raise _missing_extra()
        self.dimension = dimension
        self.model = model or self.default_model
        self._model: Any = None
        self._lock = asyncio.Lock()

    async def embed_documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One unit vector per text, in input order."""
        return await self._encode(list(texts), "document") if texts else []

    async def embed_query(self, text: str) -> np.ndarray:
        """The unit vector of a question."""
        return (await self._encode([text], "query"))[0]

    async def aclose(self) -> None:
        """Let the model's memory go; it is loaded again if the embedder is used again."""
        self._model = None

    async def _encode(self, texts: list[str], kind: str) -> list[np.ndarray]:
        try:
            model = await self._loaded()
            rows = await asyncio.to_thread(self._encode_blocking, model, texts, kind)
        except EmbeddingError:
            raise
        except Exception as exc:  # torch and the tokenizers raise whatever they like
            raise EmbeddingError(
                f"the local embedding model {self.model!r} failed: {_first_line(exc)}"
            ) from exc
        return [unit_vector(row, model=self.model, dimension=self.dimension) for row in rows]

    def _encode_blocking(self, model: Any, texts: list[str], kind: str) -> Any:
        # Instruction-tuned models (e5, bge, nomic) ship named prompts; use them when present.
        prompts = getattr(model, "prompts", None) or {}
        names = ("query",) if kind == "query" else ("document", "passage")
        prompt_name = next((name for name in names if name in prompts), None)
        return model.encode(
            texts,
            batch_size=self.batch_size,
            prompt_name=prompt_name,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )

    async def _loaded(self) -> Any:
        # The lock keeps two first questions from loading the model twice.
        async with self._lock:
            if self._model is None:
                self._model = await asyncio.to_thread(self._load_blocking)
        return self._model

    def _load_blocking(self) -> Any:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise _missing_extra() from None
        try:
            model = SentenceTransformer(self.model)
        except Exception as exc:  # download, disk and format errors all mean "cannot use it"
            raise EmbeddingError(
                f"could not load the local embedding model {self.model!r}: {_first_line(exc)}"
            ) from exc
        size = model.get_sentence_embedding_dimension()
        if size is not None and size != self.dimension:
            raise dimension_mismatch(self.model, size, self.dimension)
        return model


class MeasuredEmbedder:
    """Any embedder, with its time and texts counted on /metrics (bot/metrics.py)."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.dimension = inner.dimension

    async def embed_documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        with metrics.EMBEDDING_SECONDS.labels(kind="document").time():
            vectors = await self.inner.embed_documents(texts)
        metrics.EMBEDDING_TEXTS.labels(kind="document").inc(len(texts))
        return vectors

    async def embed_query(self, text: str) -> np.ndarray:
        with metrics.EMBEDDING_SECONDS.labels(kind="query").time():
            vector = await self.inner.embed_query(text)
        metrics.EMBEDDING_TEXTS.labels(kind="query").inc()
        return vector

    async def aclose(self) -> None:
        await self.inner.aclose()


def measured(embedder: Embedder) -> Embedder:
    """`embedder` counted on /metrics (once: a measured one is returned as it is)."""
    return embedder if isinstance(embedder, MeasuredEmbedder) else MeasuredEmbedder(embedder)


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except ValueError:  # already imported (or stubbed) without a spec: it is there
        return True


def _missing_extra() -> EmbeddingError:
    return EmbeddingError(
        "EMBEDDING_PROVIDER=local needs sentence-transformers: pip install 'deskmate[local]'"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
