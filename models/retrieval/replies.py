"""Resolved conversations as (what the customer wrote, what the agent answered) cases.

A case is a run of customer messages followed by the agent's reply (consecutive agent
messages form one reply); bot and system messages are skipped. The customer side is
embedded with the `query:` prefix, like the new message it is compared with, so the search
is symmetric. One hit per conversation: its closest case."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from core.domain.enums import Direction, SenderType
from models.retrieval.centering import LanguageCentroids
from models.retrieval.sources import MessageRow
from models.retrieval.vectors import VectorIndex
from models.service import ReplyHit

__all__ = ["ReplyCase", "ReplyIndex", "reply_cases"]

F32Array = npt.NDArray[np.float32]
MAX_CASES = 10  # per conversation: the first ones carry the matter; later ones are chit-chat
MAX_CUSTOMER_CHARS = 1500  # the latest part is kept: it is what the reply answers


@dataclass(frozen=True, slots=True)
class ReplyCase:
    conversation_id: uuid.UUID
    customer_text: str
    reply_text: str


def reply_cases(messages: Sequence[MessageRow]) -> list[ReplyCase]:
    """The (customer run, agent reply) cases of one conversation, in order."""
    cases: list[ReplyCase] = []
    asked: list[str] = []
    replied: list[str] = []
    conversation_id: uuid.UUID | None = None

    def close() -> None:
        if asked and replied and conversation_id is not None:
            customer = "\n".join(asked)[-MAX_CUSTOMER_CHARS:]
            cases.append(ReplyCase(conversation_id, customer, "\n".join(replied)))

    for message in messages:
        conversation_id = message.conversation_id
        text = message.text.strip()
        if not text:
            continue
        if message.direction == Direction.INBOUND and message.sender_type == SenderType.CUSTOMER:
            if replied:
                close()
                asked, replied = [], []
            asked.append(text)
        elif (
            asked
            and message.direction == Direction.OUTBOUND
            and message.sender_type == SenderType.AGENT
        ):
            replied.append(text)
    close()
    return cases[:MAX_CASES]


class ReplyIndex:
    """One tenant's resolved cases; `put` replaces a conversation's cases."""

    def __init__(
        self,
        vector_index: Callable[[int], VectorIndex],
        *,
        centroids: LanguageCentroids | None = None,
        detect_language: Callable[[str], str | None] | None = None,
    ) -> None:
        self._make_vectors = vector_index
        self._vectors: VectorIndex | None = None
        self._centroids = centroids
        self._detect = detect_language or _detect_language
        self._cases: dict[int, ReplyCase] = {}
        self._by_conversation: dict[uuid.UUID, list[int]] = {}
        self._next_key = 0

    @property
    def conversation_count(self) -> int:
        return len(self._by_conversation)

    @property
    def case_count(self) -> int:
        return len(self._cases)

    def __contains__(self, conversation_id: object) -> bool:
        return conversation_id in self._by_conversation

    def put(
        self, conversation_id: uuid.UUID, cases: Sequence[ReplyCase], vectors: F32Array
    ) -> None:
        """Index the cases (embedded customer texts, `query` kind) of one conversation."""
        if len(cases) != len(vectors):
            raise ValueError(f"{len(cases)} cases but {len(vectors)} vectors")
        self.remove([conversation_id])
        if not cases:
            return
        vectors = np.asarray(vectors, dtype=np.float32)
        if self._centroids is not None:
            vectors = np.stack(
                [
                    self._centroids.center(v[None, :], self._detect(c.customer_text), "query")[0]
                    for c, v in zip(cases, vectors, strict=True)
                ]
            )
        keys = np.arange(self._next_key, self._next_key + len(cases), dtype=np.int64)
        self._next_key += len(cases)
        self._cases.update(zip(keys.tolist(), cases, strict=True))
        if self._vectors is None:
            self._vectors = self._make_vectors(int(vectors.shape[1]))
        self._vectors.add(keys, vectors)
        self._by_conversation[conversation_id] = keys.tolist()

    def remove(self, conversation_ids: Iterable[uuid.UUID]) -> None:
        for conversation_id in conversation_ids:
            keys = self._by_conversation.pop(conversation_id, [])
            for key in keys:
                del self._cases[key]
            if self._vectors is not None and keys:
                self._vectors.remove(keys)

    def search(self, text: str, vector: F32Array, k: int = 3) -> list[ReplyHit]:
        """The `k` resolved conversations closest to `text` (its `query` embedding)."""
        if k <= 0 or self._vectors is None or not self._cases:
            return []
        query = np.asarray(vector, dtype=np.float32)[None, :]
        if self._centroids is not None:
            query = self._centroids.center(query, self._detect(text), "query")
        scores, keys = self._vectors.search(query, max(4 * k, 20))
        hits: list[ReplyHit] = []
        seen: set[uuid.UUID] = set()
        for score, key in zip(scores[0], keys[0], strict=True):
            case = self._cases.get(int(key))
            if case is None or case.conversation_id in seen:
                continue
            seen.add(case.conversation_id)
            hits.append(
                ReplyHit(case.conversation_id, case.customer_text, case.reply_text, float(score))
            )
            if len(hits) == k:
                break
        return hits


def _detect_language(text: str) -> str | None:
    from models.language import detect

    return detect(text).lang
