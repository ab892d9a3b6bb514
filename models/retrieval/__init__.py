"""Knowledge retrieval: KB articles chunked and searched by e5 vectors (FAISS, exact or
HNSW) fused with BM25, with citations; and reply suggestions from resolved conversations.
`Retrieval` keeps per-tenant indexes current from the database."""

from __future__ import annotations

from models.retrieval.centering import LanguageCentroids
from models.retrieval.chunking import ChunkingParams, chunk_article, passage_text, text_weight
from models.retrieval.evaluate import evaluate_retrieval
from models.retrieval.followers import AsyncEmbed, RetrievalUnavailableError
from models.retrieval.kb_index import ArticleDoc, KbIndex, RetrievalParams
from models.retrieval.replies import ReplyCase, ReplyIndex, reply_cases
from models.retrieval.service import Retrieval
from models.retrieval.vectors import FaissIndex, NumpyIndex, VectorIndex

__all__ = [
    "ArticleDoc",
    "AsyncEmbed",
    "ChunkingParams",
    "FaissIndex",
    "KbIndex",
    "LanguageCentroids",
    "NumpyIndex",
    "ReplyCase",
    "ReplyIndex",
    "Retrieval",
    "RetrievalParams",
    "RetrievalUnavailableError",
    "VectorIndex",
    "chunk_article",
    "evaluate_retrieval",
    "passage_text",
    "reply_cases",
    "text_weight",
]
