"""Head versions registered in a temporary MLflow store (the hot-swap tests and
bench/swap_bench.py).

Version 1 of `relaydesk-intent` is a copy of the bundle's intent head; a "scrambled" version
has the same weights with its label names reversed, so that it answers differently on almost
every message (a stand-in for a worse model that is easy to tell apart)."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

from core.settings import Settings
from models.bundle import ModelBundle
from models.encoder import Encoder
from models.heads import CalibratedHead
from models.registry import ModelRef, ModelRegistry


def register_folder(
    settings: Settings, task: str, folder: Path, encoder: Encoder | None = None
) -> ModelRef:
    """Register `folder` (a saved head) as the next version of `relaydesk-<task>`; MLflow
    checks it on an input example with `encoder` (None: skip the example)."""
    import mlflow
    import pandas as pd

    from models.registry import log_and_register

    with warnings.catch_warnings():
        # MLflow reads the wrappers' `predict` type hints when their classes are defined and
        # warns that `Any` is not checked
        warnings.filterwarnings("ignore", message=".*type hint is inferred as AnyType")
        from models.pyfunc import HeadPyfunc, share_encoder, text_signature

    registry = ModelRegistry.from_settings(settings)
    mlflow.set_tracking_uri(registry.tracking_uri)
    mlflow.set_registry_uri(registry.tracking_uri)
    example = None
    if encoder is not None:
        share_encoder(encoder)
        example = pd.DataFrame({"text": ["Where is my order 4411?"]})
    with mlflow.start_run(experiment_id=registry.experiment_id(task)), warnings.catch_warnings():
        if example is None:
            warnings.filterwarnings("ignore", message=".*input example was not provided")
        return log_and_register(
            registry,
            task,
            folder,
            HeadPyfunc(task),
            signature=text_signature(),
            input_example=example,
        )


def scrambled(head: CalibratedHead) -> CalibratedHead:
    return dataclasses.replace(head, labels=tuple(reversed(head.labels)))


def register_head(
    settings: Settings, bundle: ModelBundle, task: str, folder: Path, *, scramble: bool = False
) -> ModelRef:
    """Save the bundle's `task` head (scrambled if asked) under `folder` and register it."""
    if task == "urgency":
        assert bundle.urgency is not None
        head = bundle.urgency.head
        bundle.urgency.sentiment.save(folder / "sentiment")
    else:
        sentiment = bundle.sentiment.head if bundle.sentiment else None
        found = bundle.intent if task == "intent" else sentiment
        assert found is not None
        head = found
    (scrambled(head) if scramble else head).save(folder)
    return register_folder(settings, task, folder, bundle.encoder)
