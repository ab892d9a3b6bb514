"""What a job run shares: settings, the registry, the encoder and an embedding memo."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.settings import Settings
from models.registry import ModelRegistry

if TYPE_CHECKING:
    from models.encoder import Encoder, Kind

F32 = np.ndarray[Any, np.dtype[np.float32]]
Progress = Callable[[str], None]


class MemoEncoder:
    """The job's encoder seen through its memo: a text embedded once in a run is read back,
    so the training code (which embeds whatever subset it is given) never embeds twice. Name
    and version are the real encoder's, so trained heads record the right one."""

    def __init__(self, ctx: JobContext) -> None:
        self._ctx = ctx
        real = ctx.encoder
        self.name = real.name
        self.version = real.version
        self.dim = real.dim
        self.max_tokens = real.max_tokens

    def encode(self, texts: list[str], kind: Kind) -> F32:
        return self._ctx.embed(texts, kind)


@dataclass
class JobContext:
    settings: Settings
    encoder_kind: str
    datasets_dir: Path | None = None
    progress: Progress = lambda _msg: None
    _memo: dict[tuple[str, str], F32] = field(default_factory=dict)

    @property
    def models_dir(self) -> Path:
        return self.settings.models_dir

    @functools.cached_property
    def registry(self) -> ModelRegistry:
        return ModelRegistry.from_settings(self.settings)

    @functools.cached_property
    def encoder(self) -> Encoder:
        from models.encoder import load_encoder

        self.progress(f"loading encoder {self.encoder_kind}")
        return load_encoder(self.encoder_kind, self.models_dir, self.settings.ai.encoder_threads)

    @functools.cached_property
    def memo_encoder(self) -> MemoEncoder:
        return MemoEncoder(self)

    @property
    def encoder_label(self) -> str:
        return f"{self.encoder.name}@{self.encoder.version}"

    def prime(self, texts: Sequence[str], kind: Kind = "query") -> F32:
        """Embed `texts` as one cached block (`embed_cached` over exactly this list, so a
        data set the bundle or an earlier run embedded is read from disk) into the memo."""
        from models.heads import embed_cached

        vectors = embed_cached(self.encoder, list(texts), self.models_dir, kind)
        for text, vector in zip(texts, vectors, strict=True):
            self._memo[(kind, text)] = vector
        return vectors

    def embed(self, texts: Sequence[str], kind: Kind = "query") -> F32:
        """Vectors of `texts`, from the memo where seen, the others embedded (and cached)."""
        missing = list(dict.fromkeys(t for t in texts if (kind, t) not in self._memo))
        if missing:
            self.prime(missing, kind)
        if not texts:
            return np.zeros((0, self.encoder.dim), dtype=np.float32)
        return np.stack([self._memo[(kind, t)] for t in texts]).astype(np.float32)
