"""Text embeddings behind one async interface, with providers chosen by EMBEDDING_PROVIDER.

`hash` (the default) needs no network and no model: deterministic feature hashing of word
unigrams, word bigrams and character trigrams, L2-normalised. It finds passages that share words
with the question; the network providers also find passages that share meaning.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from bot.errors import DeskmateError
from bot.settings import EmbeddingProvider, Settings

_WORD = re.compile(r"[\w']+", re.UNICODE)


class EmbeddingError(DeskmateError):
    """The embedding provider failed or answered something unusable."""

    http_status = 502


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


class HashEmbedder:
    """Feature hashing: offline, deterministic, no download (the default)."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension

    def embed(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dimension, dtype=np.float32)
        words = [w.lower() for w in _WORD.findall(text)]
        features: list[tuple[str, float]] = [(f"w:{w}", 1.0) for w in words]
        features += [(f"b:{a} {b}", 0.7) for a, b in itertools.pairwise(words)]
        for word in words:
            padded = f" {word} "
            features += [(f"c:{padded[i : i + 3]}", 0.3) for i in range(len(padded) - 2)]
        for feature, weight in features:
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


def create_embedder(settings: Settings) -> Embedder:
    """The embedder the settings ask for."""
    provider = settings.embedding_provider
    if provider is EmbeddingProvider.HASH:
        return HashEmbedder(settings.embedding_dimension)
    raise EmbeddingError(f"embedding provider {provider.value!r} is not available yet")
