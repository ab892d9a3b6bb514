"""Urgency (low / normal / high / urgent): the embedding plus what the text alone does not say.

Features, in this order (`FEATURE_NAMES` for the extras):
- the message's e5 `query:` embedding (384);
- the sentiment head's calibrated probabilities (negative, neutral, positive): "strongly
  angry" is one of the taxonomy's `high` criteria;
- the channel, one-hot over `CHANNELS` (all zeros for any other channel);
- log(1 + repeat contacts), the number of earlier contacts about the same issue, capped at 5.

Repeat contacts. Training data have no contact history, so for training the count comes from
the text (`repeat_contacts_from_text`): "third time I write" -> 2 earlier contacts, "my 3rd
message" -> 2, "Troisième relance" -> 2, "ja falei 3x" -> 3, "zum dritten Mal" -> 2, in
en/es/pt/fr/de/it; anything else -> 0. At inference the caller passes `repeat_contacts` per
message: the customer's earlier inbound contacts on the same open issue (e.g. messages in the
same ticket or tickets in the last 7 days that got no resolution). `None` means unknown: the
text-derived count is used. A known count is combined with the text's as max(known, text):
"this is my third message" is evidence even when the history is elsewhere.

The urgency head is tied to the sentiment head whose probabilities it was trained on: its info
records that head's fingerprint and `UrgencyModel` refuses another.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.encoder import Encoder
from models.heads.calibrated import CalibratedHead, F32Array, Prediction
from models.heads.data import SupportExample
from models.heads.embeddings import embed_cached
from models.taxonomy import URGENCY_LABELS as URGENCY_LABELS

CHANNELS: tuple[str, ...] = ("email", "web", "whatsapp", "instagram")
FEATURE_NAMES: tuple[str, ...] = (
    "sentiment_negative",
    "sentiment_neutral",
    "sentiment_positive",
    *(f"channel_{c}" for c in CHANNELS),
    "log1p_repeat_contacts",
)
URGENCY_C_GRID = (0.005, 0.01, 0.05)
URGENCY_THRESHOLD = 0.0  # urgency always answers; routing decides what low confidence means
MAX_REPEAT = 5

_ORDINALS = {
    2: r"second|2nd|segund[ao]|2ª|2a|deuxi[eè]me|2e|zweite[nrs]?|seconda|secondo",
    3: r"third|3rd|tercer[ao]?|3ª|3a|terceir[ao]|troisi[eè]me|3e|dritte[nrs]?|terz[ao]",
    4: r"fourth|4th|cuart[ao]|4ª|4a|quart[ao]|quatri[eè]me|4e|vierte[nrs]?",
    5: r"fifth|5th|quint[ao]|5ª|5a|cinqui[eè]me|5e|f[üu]nfte[nrs]?",
}
_CONTACT_NOUN = (
    r"time|message|email|request|vez|mensaje|correo|mensagem|pedido|fois|relance|demande|"
    r"message|mal|nachricht|anfrage|volta|richiesta|segnalazione|messaggio|sollecito"
)
_CONTACT_VERB = (
    r"wr[io]te|writ(?:ten|ing)|asked|called|contacted|emailed|escrito|escribo|llamado|ped[ií]do|"
    r"escrevi|liguei|falei|pedi|[ée]crit|appel[ée]|demand[ée]|geschrieben|angerufen|"
    r"scritto|chiamato|chiesto|unsubscribed|desinscrit[ea]?|disiscritt[ao]|di de baja|"
    r"descadastrei"
)
_ORDINAL_RE = [
    (n, re.compile(rf"\b(?:{words})\s+(?:\w+\s+)?(?:{_CONTACT_NOUN})\b", re.IGNORECASE))
    for n, words in _ORDINALS.items()
]
_ZUM_MAL_RE = re.compile(r"\bzum\s+(dritten|vierten|f[üu]nften|zweiten)\s+mal\b", re.IGNORECASE)
_ZUM = {"zweiten": 2, "dritten": 3, "vierten": 4, "fünften": 5, "funften": 5}
_COUNT_RE = re.compile(
    rf"\b(?:{_CONTACT_VERB})\b[^.!?\n]{{0,25}}?\b(\d|two|three|four|five|dos|tres|cuatro|"
    r"duas|três|quatro|deux|trois|quatre|zwei|drei|vier|due|tre|quattro)\s*"
    r"(?:x|times|veces|vezes|fois|mal|volte)\b",
    re.IGNORECASE,
)
_NUMBERS = {
    "two": 2, "dos": 2, "duas": 2, "deux": 2, "zwei": 2, "due": 2,
    "three": 3, "tres": 3, "três": 3, "trois": 3, "drei": 3, "tre": 3,
    "four": 4, "cuatro": 4, "quatro": 4, "quatre": 4, "vier": 4, "quattro": 4,
    "five": 5,
}  # fmt: skip


def repeat_contacts_from_text(text: str) -> int:
    """Earlier contacts the text itself mentions (0 when it mentions none), capped at 5.

    An ordinal ("third time I write", "tercera vez", "zum dritten Mal") counts the contacts
    before this one (third -> 2); a count after a contact verb ("asked 3 times", "falei 3x")
    counts them all."""
    found = 0
    for n, pattern in _ORDINAL_RE:
        if pattern.search(text):
            found = max(found, n - 1)
    if match := _ZUM_MAL_RE.search(text):
        found = max(found, _ZUM[match.group(1).lower()] - 1)
    for match in _COUNT_RE.finditer(text):
        word = match.group(1).lower()
        found = max(found, int(word) if word.isdigit() else _NUMBERS.get(word, 0))
    return min(found, MAX_REPEAT)


def extra_features(
    sentiment_probs: np.ndarray,
    channels: Sequence[str | None],
    repeat_contacts: Sequence[int],
) -> F32Array:
    """(n, 8): sentiment probabilities, channel one-hot, log(1 + repeat contacts)."""
    onehot = np.array([[float(c == known) for known in CHANNELS] for c in channels])
    repeats = np.array([[math.log1p(min(max(r, 0), MAX_REPEAT))] for r in repeat_contacts])
    out: F32Array = np.hstack([sentiment_probs, onehot.reshape(-1, len(CHANNELS)), repeats])
    return out.astype(np.float32)


def resolve_repeats(texts: Sequence[str], known: Sequence[int | None] | None) -> list[int]:
    """max(known count, count in the text); the text's count alone where unknown."""
    counts = known if known is not None else [None] * len(texts)
    return [max(repeat_contacts_from_text(t), k or 0) for t, k in zip(texts, counts, strict=True)]


def train_urgency_head(
    encoder: Encoder,
    examples: Sequence[SupportExample],
    sentiment: CalibratedHead,
    *,
    cache_dir: Path | None = None,
    c_grid: Sequence[float] = URGENCY_C_GRID,
    seed: int = 0,
) -> CalibratedHead:
    """The urgency head on support messages; repeat contacts derived from their text."""
    texts = [e.text for e in examples]
    x = embed_cached(encoder, texts, cache_dir, "query")
    extras = extra_features(
        sentiment.predict_proba(x), [e.channel for e in examples], resolve_repeats(texts, None)
    )
    return CalibratedHead.fit(
        np.hstack([x, extras]),
        [e.urgency for e in examples],
        task="urgency",
        encoder=encoder,
        labels=URGENCY_LABELS,
        c_grid=c_grid,
        seed=seed,
        info={"features": ["embedding", *FEATURE_NAMES], "sentiment": sentiment.fingerprint()},
    )


class UrgencyModel:
    """The urgency head with the sentiment head that feeds it."""

    def __init__(self, head: CalibratedHead, sentiment: CalibratedHead) -> None:
        expected = head.info.get("sentiment")
        if expected != sentiment.fingerprint():
            raise ValueError(
                f"the urgency head was trained on sentiment head {expected}, "
                f"not {sentiment.fingerprint()}: retrain urgency with this sentiment head"
            )
        self.head = head
        self.sentiment = sentiment

    def features(
        self,
        embeddings: F32Array,
        texts: Sequence[str],
        channels: Sequence[str | None],
        repeat_contacts: Sequence[int | None] | None = None,
    ) -> F32Array:
        extras = extra_features(
            self.sentiment.predict_proba(embeddings),
            channels,
            resolve_repeats(texts, repeat_contacts),
        )
        out: F32Array = np.hstack([embeddings, extras]).astype(np.float32)
        return out

    def predict(
        self,
        embeddings: F32Array,
        texts: Sequence[str],
        channels: Sequence[str | None],
        repeat_contacts: Sequence[int | None] | None = None,
        threshold: float = URGENCY_THRESHOLD,
    ) -> list[Prediction]:
        """Urgency per message; `repeat_contacts[i]` None = unknown (see the module doc)."""
        feats = self.features(embeddings, texts, channels, repeat_contacts)
        return self.head.predict(feats, threshold)
