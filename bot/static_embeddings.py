"""`wordllama` (the default): semantic embeddings whose weights ship inside the PyPI wheel.

WordLlama's `l2_supercat` is a table of one 256-float vector per token of Llama 2's 32,000-token
vocabulary (16 MB of weights in a 19 MB wheel), trained so that the mean of a text's token
vectors puts texts of like meaning together. Embedding is a tokenizer pass, a table lookup and a
mean: no torch, no GPU, no network; about a third of a millisecond for a passage on one core.
It finds "how much holiday am I allowed?" in a passage about annual leave; `hash`, which
compares spellings, cannot.

The package would fetch a missing file from the Hugging Face hub: deskmate loads only the files
in the wheel and forbids downloads, so a broken install fails loudly instead of going online.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from bot.embeddings import EmbeddingError, unit_vector
from bot.settings import WORDLLAMA_DIMENSIONS, WORDLLAMA_MODEL

# The wheel's weights are 256 wide; smaller sizes are their first dimensions.
_FULL_DIMENSION = 256


class WordLlamaEmbedder:
    """WordLlama on this machine: batches in a worker thread, the model loaded once, lazily."""

    model = WORDLLAMA_MODEL
    batch_size = 64  # texts per call into the model; each is padded to the batch's longest

    def __init__(self, dimension: int = _FULL_DIMENSION) -> None:
        if dimension not in WORDLLAMA_DIMENSIONS:
            sizes = ", ".join(map(str, WORDLLAMA_DIMENSIONS))
            raise EmbeddingError(
                f"EMBEDDING_PROVIDER=wordllama makes {sizes} dimensions, not {dimension}"
            )
        self.dimension = dimension
        self._model: Any = None
        self._lock = asyncio.Lock()

    async def embed_documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One unit vector per text, in input order (a zero vector for a text without words)."""
        if not texts:
            return []
        model = await self._loaded()
        # A batch of long passages takes milliseconds of CPU: off the event loop.
        return await asyncio.to_thread(self._embed, model, list(texts))

    async def embed_query(self, text: str) -> np.ndarray:
        """The unit vector of a question: a few tokens, cheaper than a hop to a thread."""
        model = await self._loaded()
        return self._embed(model, [text])[0]

    async def aclose(self) -> None:
        """Let the table go; it is loaded again if the embedder is used again."""
        self._model = None

    def _embed(self, model: Any, texts: list[str]) -> list[np.ndarray]:
        try:
            rows = model.embed(texts, norm=False, batch_size=self.batch_size)
        except Exception as exc:  # the tokenizer and numpy raise what they like
            raise EmbeddingError(f"the wordllama model failed: {_first_line(exc)}") from exc
        # unit_vector, not the package's norm=True: that divides a text without words by zero.
        return [unit_vector(row, model=self.model, dimension=self.dimension) for row in rows]

    async def _loaded(self) -> Any:
        # The lock keeps two first questions from loading the model twice.
        async with self._lock:
            if self._model is None:
                self._model = await asyncio.to_thread(self._load_blocking)
        return self._model

    def _load_blocking(self) -> Any:
        try:
            with _root_logging_kept():
                import wordllama
            package = Path(wordllama.__file__).parent
            # The wheel keeps the tokenizer in tokenizers/, where WordLlama looks under a cache
            # directory but not in its own package: naming the package as the cache finds it,
            # and disable_download makes a missing file an error instead of a hub download.
            return wordllama.WordLlama.load(
                WORDLLAMA_MODEL,
                dim=_FULL_DIMENSION,
                trunc_dim=None if self.dimension == _FULL_DIMENSION else self.dimension,
                cache_dir=package,
                disable_download=True,
            )
        except ImportError:
            raise EmbeddingError(
                "EMBEDDING_PROVIDER=wordllama needs the wordllama package: pip install wordllama"
            ) from None
        except Exception as exc:  # a missing or damaged file of the wheel, whatever raises it
            raise EmbeddingError(
                f"could not load the wordllama model {WORDLLAMA_MODEL!r}: {_first_line(exc)}"
            ) from exc


@contextmanager
def _root_logging_kept() -> Iterator[None]:
    """Undo what importing wordllama does to logging: it calls logging.basicConfig(INFO)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
