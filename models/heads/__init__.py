"""Classification heads over the shared embedding: intent (with tenant few-shot intents),
sentiment (with the VADER lexicon for English) and urgency, each a calibrated multinomial
logistic regression."""

from __future__ import annotations

from models.heads.calibrated import (
    CalibratedHead,
    EncoderMismatchError,
    Prediction,
    expected_calibration_error,
)
from models.heads.data import SUPPORT_TEST, SUPPORT_TRAIN, SupportExample, load_support
from models.heads.embeddings import embed_cached
from models.heads.evaluate import evaluate_heads, render_model_card
from models.heads.intent import (
    INTENT_LABELS,
    CustomIntent,
    FewShotIntents,
    train_intent_head,
)
from models.heads.sentiment import (
    SENTIMENT_LABELS,
    SentimentModel,
    lexicon_features,
    lexicon_labels,
    train_sentiment_head,
)
from models.heads.urgency import (
    URGENCY_LABELS,
    UrgencyModel,
    repeat_contacts_from_text,
    train_urgency_head,
)

__all__ = [
    "INTENT_LABELS",
    "SENTIMENT_LABELS",
    "SUPPORT_TEST",
    "SUPPORT_TRAIN",
    "URGENCY_LABELS",
    "CalibratedHead",
    "CustomIntent",
    "EncoderMismatchError",
    "FewShotIntents",
    "Prediction",
    "SentimentModel",
    "SupportExample",
    "UrgencyModel",
    "embed_cached",
    "evaluate_heads",
    "expected_calibration_error",
    "lexicon_features",
    "lexicon_labels",
    "load_support",
    "render_model_card",
    "repeat_contacts_from_text",
    "train_intent_head",
    "train_sentiment_head",
    "train_urgency_head",
]
